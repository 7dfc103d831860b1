"""The configuration: YAML with positions (``yaml_positions``), ``${VAR}`` substitution
(``env``), the root model composed of every package's settings (``models``), the graph and
signal-chain checks (``graph``, ``chain``) and messages that name file, line and key
(``messages``). ``loader.load_config`` is the entry point."""
