"""Everything that reacts to computing results: triggers, history, hardware and network actions."""
