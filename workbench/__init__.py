"""Speech Enhancement Workbench: inspect complex spectrograms, run enhancement models, listen, measure."""

__version__ = "0.1.0"
