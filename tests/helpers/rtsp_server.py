"""A real RTSP server for the service tests (run it with the system /usr/bin/python3: `gi`).

Serves one H.264 Annex-B file in a seamless loop on 127.0.0.1 at every path given with
--mount (e.g. /cam1 /cam2). Signals: SIGUSR1 stops the data of every media (clients stay
connected but receive nothing: a stalled source), SIGUSR2 lets it flow again, SIGTERM/SIGINT stop.
Prints "READY <port>" on stdout once it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", required=True, help="H.264 Annex-B elementary stream")
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--mount", action="append", default=[])
    ap.add_argument("--auth", metavar="USER:PASSWORD", help="require Basic authentication")
    ap.add_argument("--tls", metavar="PEM", help="certificate + key: serve rtsps:// only")
    args = ap.parse_args()
    Gst.init(None)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    launch = (
        f'( multifilesrc location="{args.file}" loop=true '
        f"! video/x-h264,stream-format=byte-stream,framerate={args.fps}/1 "
        "! h264parse ! valve name=gate drop=false ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    medias: list[GstRtspServer.RTSPMedia] = []

    def on_configure(_factory, media):
        medias.append(media)
        media.connect("unprepared", lambda m: medias.remove(m) if m in medias else None)

    secured = bool(args.auth or args.tls)
    if secured:
        auth = GstRtspServer.RTSPAuth()
        viewer = GstRtspServer.RTSPToken()
        viewer.set_string("media.factory.role", "viewer")
        if args.tls:
            auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(args.tls))
        if args.auth:
            user, password = args.auth.split(":", 1)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), viewer)
        else:
            auth.set_default_token(viewer)  # TLS only: anyone may watch
        server.set_auth(auth)

    for path in args.mount or ["/cam"]:
        factory = GstRtspServer.RTSPMediaFactory()
        if secured:
            factory.add_role_from_structure(
                Gst.Structure.from_string(
                    "viewer, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )[0]
            )
        factory.set_launch(launch)
        # One pipeline per mount shared by its clients, so a pause stalls them all.
        factory.set_shared(True)
        factory.connect("media-configure", on_configure)
        mounts.add_factory(path, factory)

    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()

    def set_flowing(flowing: bool) -> bool:
        # A closed valve drops buffers: sessions and sockets stay up, no packet goes out.
        for media in list(medias):
            media.get_element().get_by_name("gate").set_property("drop", not flowing)
        print(f"flowing={flowing}: {len(medias)} media", file=sys.stderr, flush=True)
        return GLib.SOURCE_CONTINUE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, set_flowing, False)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR2, set_flowing, True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: loop.quit() or False)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
