"""One module per processing-node type; importing this package registers them all with
``firmware.dsp.registry``."""

from firmware.dsp.nodes import basic, concentration, filter, lockin, peak_finder, record

__all__ = ["basic", "concentration", "filter", "lockin", "peak_finder", "record"]
