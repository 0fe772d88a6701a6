"""xnoryolo: darknet-exact binary (XNOR) Tiny-YOLO detection for edge CPUs."""

__version__ = "0.1.0"
