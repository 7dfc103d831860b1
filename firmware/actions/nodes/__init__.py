"""One module per action node type; each registers itself with ``firmware.dsp.registry``."""
