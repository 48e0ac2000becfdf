"""zeke: private, on-device face and emotion sensing for single-board computers."""

__version__ = "0.1.0"
