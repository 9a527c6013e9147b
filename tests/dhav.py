"""Writes a Dahua DHAV (.dav) file, as Dahua NVRs export recordings, from the H.264
access units of a clip: no sample of the format may be committed, and none is here.

Each frame is a 24-byte header ("DHAV", frame type 0xFD for a key picture or 0xFC,
frame number, length, a packed wall-clock second, a millisecond counter), extension
fields (0x80: size in units of 8 pixels; 0x81: codec 2 = H.264 and frame rate), the
Annex B access unit, and a trailer ("dhav" and the length again). This is the layout
FFmpeg's `dhav` demuxer reads; PyAV opens the file with that demuxer."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from pathlib import Path

import av
from av.bitstream import BitStreamFilterContext

KEY, PFRAME = 0xFD, 0xFC
H264 = 0x2


def packed_second(t: datetime) -> int:
    return (t.second | t.minute << 6 | t.hour << 12 | t.day << 17 | t.month << 22 | (t.year - 2000) << 26)


def frame_chunk(payload: bytes, key: bool, number: int, at: datetime, ms: int, size: tuple[int, int],
                fps: int) -> bytes:
    ext = bytes([0x80, 0, size[0] // 8, size[1] // 8, 0x81, 0, H264, fps])
    length = 24 + len(ext) + len(payload) + 8
    head = b"DHAV" + struct.pack("<BBBBIIIHBB", KEY if key else PFRAME, 0, 0, 0, number, length,
                                 packed_second(at), ms & 0xFFFF, len(ext), 0)
    return head + ext + payload + b"dhav" + struct.pack("<I", length)


def write_dhav(mp4: Path, out: Path, start: datetime = datetime(2026, 3, 1, 12, 0, 0)) -> int:
    """`mp4`'s H.264 frames as a .dav file (frames in decoding order, timed at the
    clip's frame rate from `start`); returns how many frames were written."""
    n = 0
    with av.open(str(mp4)) as c, open(out, "wb") as f:
        stream = c.streams.video[0]
        fps = round(float(stream.average_rate))
        size = (stream.codec_context.width, stream.codec_context.height)
        to_annex_b = BitStreamFilterContext("h264_mp4toannexb", stream)
        packets = (q for p in c.demux(stream) for q in to_annex_b.filter(None if p.size == 0 else p))
        for pkt in packets:
            at = start + timedelta(seconds=n / fps)
            f.write(frame_chunk(bytes(pkt), pkt.is_keyframe, n, at.replace(microsecond=0),
                                round(n * 1000 / fps), size, fps))
            n += 1
    return n
