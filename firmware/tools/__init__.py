"""Offline commands: ``pafw analyze``/``simulate``, ``script check``/``push`` and ``status``."""
