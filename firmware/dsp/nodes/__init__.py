"""One module per processing-node type; each registers itself with ``firmware.dsp.registry``."""
