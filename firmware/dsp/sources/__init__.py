"""Audio sources: the base class (``base``), the simulator with its concentration profiles,
WAV files, ALSA capture, their settings and the factory that picks one from the config."""
