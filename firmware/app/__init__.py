"""The running analyzer: the DSP loop (``analyzer``), everything built around it
(``appliance``: HAL, MQTT, actions, control loop), what an operator may change
(``operations``), and what they share with the outside (status file, rates, trend, export)."""
