"""Which compressed pictures no other picture refers to (disposable ones).

A disposable picture's packet can be left out of the decoder when nobody wants
its frame (one that detection.fps does not analyse): every other picture still
decodes bit for bit the same. FFmpeg's own `skip_frame=nonref` drops them all,
the analysed ones too, so the decision is made here, per packet.

H.264: the slice NAL units' nal_ref_idc is 0 (the spec has it equal on every
slice of a picture). HEVC: a sub-layer non-reference NAL type (TRAIL_N, TSA_N,
RADL_N, ...); such a picture may still be referred to by a higher temporal
sub-layer, so HEVC counts only in streams with a single sub-layer.

Packets come length-prefixed (MP4, MKV: AVCC/hvcC extradata says the prefix's
size) or with Annex-B start codes (MPEG-TS, RTSP, raw .h264).
"""

from __future__ import annotations

H264_IDR = 5
H264_SLICES = frozenset({1, H264_IDR})     # a coded slice, an IDR slice
HEVC_SLICE_TYPES = 32               # NAL types 0..31 are slices
HEVC_REFERENCE_TYPES = frozenset(range(16, 32)) | frozenset(range(1, 16, 2))   # IRAP, reserved, *_R
# Bytes looked at for the first slice of an Annex-B packet: access unit
# delimiter, parameter sets and SEI come before it and are rarely longer.
ANNEX_B_HEAD = 2048


def length_size(codec: str, extradata: bytes | None) -> int | None:
    """The NAL length prefix size of a stream's packets (0: Annex-B start codes),
    or None when its pictures cannot be told disposable (another codec, an HEVC
    stream with temporal sub-layers or without an hvcC to say it has none)."""
    data = extradata or b""
    if codec == "h264":
        # avcC begins with version 1; Annex-B extradata (if any) with a start code.
        return (data[4] & 3) + 1 if len(data) > 4 and data[0] == 1 else 0
    if codec == "hevc" and len(data) > 22 and data[0] == 1:
        layers = (data[21] >> 3) & 7     # hvcC numTemporalLayers (0: unknown)
        return (data[21] & 3) + 1 if layers == 1 else None
    return None


def disposable(data, codec: str, prefix: int) -> bool:
    """Whether the picture in packet `data` (bytes-like) is one nothing refers to;
    `prefix` from `length_size`. False when no slice is found."""
    header = _first_slice(data, codec, prefix)
    if header is None:
        return False
    if codec == "h264":
        return header >> 5 & 3 == 0
    return (header >> 1 & 0x3F) not in HEVC_REFERENCE_TYPES


def skippable_towards(pkt, pts: int, codec: str, prefix: int | None) -> bool:
    """Whether a decode that only wants the picture shown at `pts` may leave packet
    `pkt` out: a picture nothing refers to, and not that one."""
    return prefix is not None and pkt.pts != pts and disposable(pkt, codec, prefix)


def refreshes(data, codec: str, prefix: int) -> bool:
    """Whether the picture in packet `data` starts the stream afresh, so a decoder that
    begins there decodes every later picture as one that began earlier does: an H.264
    IDR; an HEVC IRAP (IDR, CRA or BLA: a CRA's leading pictures may refer to earlier
    ones, which the caller rules out by their display times). False when no slice is found."""
    header = _first_slice(data, codec, prefix)
    if header is None:
        return False
    if codec == "h264":
        return header & 0x1F == H264_IDR
    return 16 <= (header >> 1 & 0x3F) <= 21


def _is_slice(header: int, codec: str) -> bool:
    return (header & 0x1F) in H264_SLICES if codec == "h264" else (header >> 1 & 0x3F) < HEVC_SLICE_TYPES


def _first_slice(data, codec: str, prefix: int) -> int | None:
    """The first byte of the packet's first slice NAL unit's header."""
    view = memoryview(data)
    if prefix:
        pos, n = 0, len(view)
        while pos + prefix < n:
            header = view[pos + prefix]
            if _is_slice(header, codec):
                return header
            pos += prefix + int.from_bytes(view[pos:pos + prefix], "big")
        return None
    for chunk in (bytes(view[:ANNEX_B_HEAD]), bytes(view)):
        pos = chunk.find(b"\x00\x00\x01")
        while 0 <= pos < len(chunk) - 3:
            header = chunk[pos + 3]
            if _is_slice(header, codec):
                return header
            pos = chunk.find(b"\x00\x00\x01", pos + 3)
        if len(chunk) == len(view):
            break
    return None
