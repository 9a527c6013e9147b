"""Where a file is cut into chunks that decode on their own (sources.cuts): only
at keyframes that start a clean decode, so chunks decoded side by side give the
frames of one decode. Packet lists here are written by hand to reach the cases
an encoder seldom makes (the real files are in test_parallel_decode.py)."""

from __future__ import annotations

from motionwatch.sources.cuts import LEAD_CHECK, Chunk, Cutter

# Length-prefixed (4 bytes) H.264 packets holding one slice NAL unit.
IDR = b"\x00\x00\x00\x02\x65\x88"
NON_IDR_I = b"\x00\x00\x00\x02\x41\x9a"   # nal type 1 (a recovery-point I picture is flagged key too)


def closed_gops(gops: int, size: int) -> list[tuple[int, bool, bytes]]:
    """(pts, key, data) in decode order: I P B B P B B ..., B-frames shown before the P they follow."""
    out, t = [], 0
    for _ in range(gops):
        out.append((t, True, IDR))
        for k in range(1, size, 3):
            out.append((t + k + 2, False, b""))   # P
            out.append((t + k, False, b""))       # B
            out.append((t + k + 1, False, b""))   # B
        t += size
    return out


def cut(packets, codec="h264", prefix=4, min_packets=30) -> list[Chunk]:
    c = Cutter(codec, prefix, min_packets)
    chunks = [ch for pts, key, data in packets if (ch := c.feed(pts, key, data)) is not None]
    return chunks + c.end()


def test_closed_gops_are_cut_at_each_idr_once_a_chunk_is_long_enough():
    packets = closed_gops(6, 40)
    chunks = cut(packets, min_packets=60)
    assert [c.first for c in chunks] == [0, 80, 160]
    assert [c.key_pts for c in chunks] == [None, 80, 160]
    assert sum(c.count for c in chunks) == len(packets)


def test_an_open_gops_leading_pictures_keep_it_from_being_a_cut():
    packets = closed_gops(4, 40)
    # The second GOP's keyframe is followed by a B-frame shown before it: it refers back.
    i = next(n for n, p in enumerate(packets) if p[0] == 40)
    packets.insert(i + 1, (39.5, False, b""))
    chunks = cut(packets)
    assert [c.key_pts for c in chunks] == [None, 80, 120]
    assert sum(c.count for c in chunks) == len(packets)


def test_a_leading_picture_far_after_the_keyframe_is_still_seen():
    packets = closed_gops(3, 40)
    i = next(n for n, p in enumerate(packets) if p[0] == 40)
    packets.insert(i + LEAD_CHECK - 1, (39.5, False, b""))
    assert [c.key_pts for c in cut(packets, min_packets=10)] == [None, 80]


def test_a_picture_decoded_before_the_keyframe_but_shown_after_it_keeps_it_from_being_a_cut():
    packets = closed_gops(3, 40)
    i = next(n for n, p in enumerate(packets) if p[0] == 40)
    packets.insert(i, (40.5, False, b""))
    assert [c.key_pts for c in cut(packets)] == [None, 80]


def test_h264_keyframes_that_are_not_idr_are_not_cuts():
    packets = [(p, key, NON_IDR_I if key and p == 40 else data) for p, key, data in closed_gops(3, 40)]
    assert [c.key_pts for c in cut(packets)] == [None, 80]


def test_other_codecs_cut_at_any_clean_keyframe_and_unknown_ones_not_at_all():
    packets = [(p, key, b"") for p, key, _ in closed_gops(3, 40)]
    assert [c.key_pts for c in cut(packets, codec="mpeg4", prefix=None)] == [None, 40, 80]
    assert cut(packets, codec="theora", prefix=None) == [Chunk(None, 0, len(packets))]
    assert cut(packets, codec="h264", prefix=None) == [Chunk(None, 0, len(packets))]   # no NAL framing known


def test_a_packet_without_a_time_stops_the_cutting():
    packets = closed_gops(4, 40)
    packets[100] = (None, False, b"")
    chunks = cut(packets)
    assert [c.key_pts for c in chunks] == [None, 40]
    assert sum(c.count for c in chunks) == len(packets)


def test_a_keyframe_near_the_end_is_a_cut_when_nothing_follows_it():
    packets = closed_gops(2, 40) + [(80, True, IDR)]
    assert [c.key_pts for c in cut(packets)] == [None, 40, 80]


def test_when_no_cut_comes_in_time_the_rest_of_the_file_is_handed_out_at_once():
    """An open-GOP file: the rest is one chunk of unknown length, given as soon as
    the current one has grown too long, so it is decoded as it goes."""
    packets = [(p, key, NON_IDR_I if key and p else data) for p, key, data in closed_gops(10, 40)]
    c = Cutter("h264", 4, 30, max_packets=100)
    got = [(n, ch) for n, (pts, key, data) in enumerate(packets) if (ch := c.feed(pts, key, data)) is not None]
    assert got == [(99, Chunk(None, 0, None))]
    assert c.end() == []


def test_the_rest_follows_the_chunks_already_cut():
    packets = closed_gops(2, 40) + [(p + 80, key, NON_IDR_I if key else data) for p, key, data in closed_gops(8, 40)]
    assert cut_with_max(packets, 100) == [Chunk(None, 0, 40), Chunk(40, 40, None)]


def cut_with_max(packets, max_packets):
    c = Cutter("h264", 4, 30, max_packets)
    return [ch for pts, key, data in packets if (ch := c.feed(pts, key, data)) is not None] + c.end()
