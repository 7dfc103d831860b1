"""pafw: photoacoustic gas analyzer firmware (DSP graph, actions, deployment)."""

__version__ = "0.1.0"
