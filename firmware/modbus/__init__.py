"""The Modbus TCP server of a running appliance: a register map made from the config
(``registers.py``), the values encoded for PLCs (``encoding.py``), the live register image
(``image.py``) and the server thread (``server.py``). docs/modbus.md is the reference."""
