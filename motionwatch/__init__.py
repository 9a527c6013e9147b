"""motionwatch: a live motion detector for cameras and video files."""

__version__ = "0.1.0"
