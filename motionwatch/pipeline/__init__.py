"""Running cameras: the capture loop, the checks before start, and the runtime that starts and stops it all."""
