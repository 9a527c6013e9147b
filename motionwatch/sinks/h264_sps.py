"""Whether an H.264 sample entry's video is 8-bit 4:2:0, the pixel format browsers play.

Read from the sequence parameter set stored in the entry's avcC box (H.264
7.3.2.1.1), so a file's pixel format is known without starting ffprobe.
"""

from __future__ import annotations

import struct

HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}   # SPS has chroma/bit depth


def yuv420_8bit(codec: str, entry: bytes) -> bool | None:
    """Whether an H.264 track is 8-bit 4:2:0 (what browsers play), from the SPS in avcC."""
    if codec != "h264":
        return None
    at = entry.find(b"avcC", 86)   # past the visual sample entry's fixed fields
    if at < 0 or len(entry) < at + 12:
        return None
    profile, n_sps = entry[at + 5], entry[at + 9] & 0x1F
    if profile in (66, 77, 88):
        return True       # Baseline, Main, Extended: always 8-bit 4:2:0
    if not n_sps:
        return None       # avc3 with parameter sets only in the stream
    length = struct.unpack_from(">H", entry, at + 10)[0]
    return _sps_yuv420_8bit(entry[at + 12:at + 12 + length])


def _sps_yuv420_8bit(nal: bytes) -> bool | None:
    """chroma_format_idc == 1 and 8-bit luma/chroma, read from an SPS NAL (H.264 7.3.2.1.1)."""
    if len(nal) < 5:
        return None
    profile = nal[1]
    if profile not in HIGH_PROFILES:
        return True
    bits = _Bits(nal[4:].replace(b"\x00\x00\x03", b"\x00\x00"))
    try:
        bits.ue()                         # seq_parameter_set_id
        chroma = bits.ue()
        if chroma == 3:
            bits.take(1)                  # separate_colour_plane_flag
        # 4:0:0 counts as 4:2:0: ffmpeg's decoder (so ffprobe and the browsers' ffmpeg) gives it
        # as yuv420p with grey chroma.
        return chroma in (0, 1) and bits.ue() == 0 and bits.ue() == 0
    except IndexError:
        return None


class _Bits:
    """Exp-Golomb reader over an RBSP."""

    def __init__(self, data: bytes):
        self.value, self.left = int.from_bytes(data, "big"), len(data) * 8

    def take(self, n: int) -> int:
        if n > self.left:
            raise IndexError("SPS ends early")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.take(1) == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.take(zeros)
