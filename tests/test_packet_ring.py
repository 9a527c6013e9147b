"""The pure rules under stream-copy clips: the packet ring keeps whole GOPs back
from the pre-roll and everything an open clip still needs; a clip ends after the
shortest run of packets whose display order is whole (B-frames)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from motionwatch.media.remux import closing_end
from motionwatch.media.ring import PacketRing


@dataclass
class Pkt:
    """What the ring reads of an av.Packet."""

    pts: int
    is_keyframe: bool
    dts: int = 0
    duration: int = 1
    size: int = 100


@dataclass
class Timed:
    pts: int
    key: bool = False


def fill(ring: PacketRing, start: int, stop: int, gop: int = 10) -> None:
    for i in range(start, stop):
        ring.push(Pkt(i, i % gop == 0, dts=i))


def test_ring_keeps_the_pre_roll_from_the_keyframe_before_it():
    ring = PacketRing(Fraction(1, 10), keep_s=2.0)     # 20 ticks of pre-roll, GOPs of 10
    fill(ring, 0, 100)
    assert len(ring) == 30 and ring.since(0)[0].pts == 70   # 99 - 20 = 79: from the keyframe at 70
    assert ring.since(85)[0].pts == 80 and ring.since(85)[0].key
    assert ring.nbytes == 30 * 100


def test_a_pinned_ring_keeps_an_open_clips_packets_until_unpinned():
    ring = PacketRing(Fraction(1, 10), keep_s=2.0)
    fill(ring, 0, 100)
    first = ring.since(85)[0]
    ring.pin(first.seq)
    fill(ring, 100, 300)
    assert ring.since(0)[0].pts == 80 and len(ring) == 220
    assert [p.pts for p in ring.after(first.seq)][:2] == [81, 82]
    ring.pin(None)
    assert len(ring) == 30 and ring.since(0)[0].pts == 270


def test_packets_without_a_time_or_data_are_not_kept():
    ring = PacketRing(Fraction(1, 10), keep_s=2.0)
    ring.push(Pkt(None, True))
    ring.push(Pkt(5, True, size=0))
    assert len(ring) == 0


def test_closing_end_waits_for_b_frames_shown_before_the_last_reference():
    # Decode order of a GOP with B-frames: I0 P3 B1 B2 P6 B4 B5 I7 ...
    pkts = [Timed(0, True), Timed(3), Timed(1), Timed(2), Timed(6), Timed(4), Timed(5), Timed(7, True), Timed(8)]
    assert closing_end(pkts, 2, at_eof=False) == 4      # I0 P3 B1 B2: shows 0..3, nothing missing
    assert closing_end(pkts, 4, at_eof=False) == 7      # up to B5: 0..6 whole
    assert closing_end(pkts, 0, at_eof=False) == 1
    assert closing_end(pkts, 8, at_eof=True) == 9       # the end of the file closes everything


def test_closing_end_never_returns_an_open_run():
    pkts = [Timed(0, True), Timed(4), Timed(1), Timed(2)]    # B3 never came (the stream is still going)
    n = closing_end(pkts, 4, at_eof=False)
    shown = sorted(p.pts for p in pkts[:n])
    assert shown == list(range(shown[0], shown[0] + len(shown)))


def test_a_clock_that_jumps_back_still_gives_a_whole_clip(tmp_path):
    """A looped restream or a camera that restarts its counter: the stream's times
    jump back mid-clip. The MP4 keeps rising times and holds every packet."""
    import av

    from motionwatch.media.remux import CodecTemplate, Mp4Remux
    from motionwatch.sources.scene import Scene, write_h264
    src = tmp_path / "loop.mp4"
    write_h264(Scene(width=160, height=120, fps=10, duration_s=2, seed=1), src, 100_000, 10)
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        template = CodecTemplate(stream)
        packets = [p for p in c.demux(stream) if p.size]
    out = Mp4Remux(tmp_path / "clip.mp4", template)
    for p in packets + packets:   # the second time round, the clock starts again
        out.write(p.pts, p.dts, p.duration, p.is_keyframe, p)
    out.close()
    with av.open(str(tmp_path / "clip.mp4")) as c:
        got = [p for p in c.demux(video=0) if p.size]
        frames = list(c.decode(video=0)) if c.seek(0) is None else []
    dts = [p.dts for p in got]
    assert len(got) == 2 * len(packets) and dts == sorted(dts) and len(set(dts)) == len(dts)
    assert len(frames) == 2 * len(packets)
    assert out.seconds >= 3.9


def test_a_clock_that_jumps_back_does_not_grow_the_ring():
    """A looped restream, a camera that restarted its counter or an MPEG-TS clock
    wrap: the times go back. The ring still keeps about the pre-roll, not every
    packet until the times pass the old ones again (a looped 1080p camera's ring
    grew all that while), and an event after the jump finds its pre-roll."""
    ring = PacketRing(Fraction(1, 10), keep_s=2.0)
    fill(ring, 0, 500)
    fill(ring, 0, 300)      # the clock starts again at 0
    assert len(ring) <= 30
    assert ring.since(275)[0].pts == 270 and ring.since(275)[0].key
    fill(ring, 300, 600)    # ... and carries on rising past where it was before
    assert len(ring) <= 30 and ring.since(575)[0].pts == 570


def test_the_pre_roll_of_a_picture_just_after_the_times_started_again_is_the_pre_roll_seconds():
    """Recordings joined end to end (`cat a.ts b.ts`) or a camera that restarted its
    counter: an event 0.5 s after the restart gets `back` of pre-roll on the ring's
    clock, which carries on across the restart (as the scan's file times and a player
    do), not every packet the ring holds because all times before the restart are larger."""
    ring = PacketRing(Fraction(1, 10), keep_s=4.0)
    fill(ring, 0, 120)
    fill(ring, 0, 5)        # the clock starts again at 0
    got = ring.since(4, back=20)     # 2 s before the picture at 4: from the keyframe at 100
    assert got[0].pts == 100 and got[0].key and [p.pts for p in got][-6:] == [119, 0, 1, 2, 3, 4]
    assert got[0].clock == 100 and got[-1].clock == 124
