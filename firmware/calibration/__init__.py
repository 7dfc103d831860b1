"""Calibration: the guided zero/span procedure, the fit, the versioned records kept in the
state dir, due dates and the zero-drift check (docs/calibration.md).

A layer between ``dsp`` and ``config``: it reads results (core) and drives the concentration
node (dsp); ``config`` composes its ``settings`` model and ``app`` builds its manager.
"""
