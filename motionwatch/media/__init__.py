"""Everything about encoded video, on PyAV (FFmpeg as a library).

probe: a stream's facts; frames: the decoder's Y plane as a view and colour on
demand; ring: the compressed packet ring that feeds clips; remux: stream-copy
cuts to MP4; encode: H.264 (libx264) for sources a browser cannot play as they
are. Knows nothing of cameras or events.
"""
