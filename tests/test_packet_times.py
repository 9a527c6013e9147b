"""Unit: media.packet_times, the times filled in for packets a container leaves
without (MPEG-PS), and the empty packets that repeat a picture (Theora, VP8). The
whole behaviour is tested on real files in test_clip_copy (MPEG-PS clips) and
test_scan_odd_inputs (Ogg Theora)."""

from __future__ import annotations

import av

from motionwatch.media.packet_times import PacketTimes, repeats_last


def packet(pts, dts=None, duration=3600, data=b"\x00\x00\x01"):
    p = av.Packet(data)
    p.pts, p.dts, p.duration = pts, dts, duration
    return p


def filled(times: PacketTimes, stamps) -> list:
    out = []
    for pts, dts in stamps:
        p = packet(pts, dts)
        times.fill(p)
        out.append((p.pts, p.dts))
    return out


def test_untimed_packets_are_counted_on_from_the_last_timed_one():
    got = filled(PacketTimes(reorders=False, sparse=True),
                 [(None, None), (45000, 45000), (None, None), (None, None), (55800, None), (None, None)])
    assert got == [(None, None), (45000, 45000), (48600, 48600), (52200, 52200), (55800, 55800), (59400, 59400)]


def test_a_sparse_formats_time_one_picture_off_is_taken_as_counted():
    """MPEG-PS gave two pictures one time; a larger step (dropped frames) stands."""
    got = filled(PacketTimes(reorders=False, sparse=True),
                 [(340200, 340200), (None, None), (351000, 351000), (351000, 351000), (None, None), (372600, 372600)])
    assert got == [(340200, 340200), (343800, 343800), (347400, 347400), (351000, 351000), (354600, 354600),
                   (372600, 372600)]


def test_other_formats_keep_their_own_times_and_streams_that_reorder_are_left_alone():
    got = filled(PacketTimes(reorders=False, sparse=False), [(0, None), (3600, None), (None, None), (14400, 7200)])
    assert got == [(0, None), (3600, None), (7200, 7200), (14400, 7200)]
    got = filled(PacketTimes(reorders=True, sparse=True), [(7200, 0), (None, None), (3600, 3600)])
    assert got == [(7200, 0), (None, None), (3600, 3600)]


def test_only_an_empty_packet_with_a_time_repeats_a_picture():
    assert repeats_last(packet(9000, 9000, data=b""))
    assert not repeats_last(packet(None, None, data=b""))     # the demuxer's last: drains the decoder
    assert not repeats_last(packet(9000, 9000))
