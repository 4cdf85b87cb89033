"""A real RTSP server for tests (Debian's GStreamer RTSP server). Run with /usr/bin/python3.

    /usr/bin/python3 tests/support/rtsp_server.py --file video.mp4 [--mount /cam] [--port 0] [--user U --password P]

Serves an H.264 MP4 file without re-encoding, looping, TCP only, bound to 127.0.0.1. Prints
``READY <port>`` on stdout once it listens, so a test can await that line instead of sleeping.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--port", default="0")
    parser.add_argument("--user", default=None, help="require basic auth with this user")
    parser.add_argument("--password", default=None)
    parser.add_argument("--udp", action="store_true", help="also allow RTP over UDP (ports on loopback)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    factory = GstRtspServer.RTSPMediaFactory()
    # multifilesrc loops the file forever; no decoding or re-encoding.
    factory.set_launch(
        f"( multifilesrc location={args.file} loop=true ! qtdemux ! h264parse ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    if args.udp:
        pool = GstRtspServer.RTSPAddressPool()
        pool.add_range("127.0.0.1", "127.0.0.1", 40000, 49999, 0)
        factory.set_address_pool(pool)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
    else:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print("FAILED to attach", flush=True)
        sys.exit(1)
    print(f"READY {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
