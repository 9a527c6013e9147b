"""A real RTSP camera on loopback for the stream tests: GStreamer's RTSP server
(Debian's gir1.2-gst-rtsp-server-1.0, through python3-gi) serving an H.264 MP4
file (with --codec hevc an HEVC MP4; with --codec mjpeg a MOV of JPEGs: an RTSP
JPEG camera), paced at its own frame rate, to each client from its start.

It runs under the system Python (/usr/bin/python3), where python3-gi lives, as
its own process: killing it is the camera going away, and starting it again on
the same port brings the camera back. It prints `listening PORT` once ready.

    /usr/bin/python3 tests/rtsp_server.py --file visit.mp4 [--port 0] [--codec hevc|mjpeg]

The stream is at rtsp://127.0.0.1:PORT/cam.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True, help="an H.264 (or HEVC) MP4 file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--codec", choices=("h264", "hevc", "mjpeg"), default="h264")
    ap.add_argument("--rtp-timestamp-offset", type=int, default=None,
                    help="the first RTP timestamp (32 bits at 90 kHz: a value near 2**32 makes it wrap soon)")
    ap.add_argument("--udp-only", action="store_true",
                    help="refuse RTP over the RTSP connection (TCP), as some cameras do")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # config-interval=0: SPS/PPS in the SDP only. (-1 repeats them before every slice of
    # a keyframe, which FFmpeg then reads as two pictures; cameras send them once a picture.)
    # HEVC cameras send VPS/SPS/PPS in band before each keyframe as well as in the SDP
    # (one slice a picture here, so -1 sends them once a keyframe).
    pay = {"mjpeg": "jpegparse ! rtpjpegpay name=pay0 pt=26",
           "h264": "h264parse ! rtph264pay name=pay0 pt=96 config-interval=0",
           "hevc": "h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1"}[args.codec]
    if args.rtp_timestamp_offset is not None:
        pay += f" timestamp-offset={args.rtp_timestamp_offset}"
    factory.set_launch(f'( filesrc location="{args.file}" ! qtdemux ! {pay} )')
    if args.udp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        return 1
    print(f"listening {server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
