"""An HTTP video server for tests, on 127.0.0.1: static files (progressive MP4, HLS playlists and
segments) under /files/, and an MJPEG stream (multipart/x-mixed-replace) at /mjpeg."""

from __future__ import annotations

import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

BOUNDARY = "vigilframe"


class _Handler(SimpleHTTPRequestHandler):
    jpegs: ClassVar[list[bytes]] = []
    fps: ClassVar[float] = 10.0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/mjpeg"):
            self._mjpeg()
            return
        if not self.path.startswith("/files/"):
            self.send_error(404)
            return
        self.path = self.path.removeprefix("/files")
        super().do_GET()

    def _mjpeg(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.end_headers()
        i = 0
        try:
            while True:
                jpeg = self.jpegs[i % len(self.jpegs)]
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                i += 1
                time.sleep(1.0 / self.fps)
        except (BrokenPipeError, ConnectionResetError):
            return


class HttpVideoServer:
    def __init__(self, directory: Path, jpegs: list[bytes]) -> None:
        handler = functools.partial(type("H", (_Handler,), {"jpegs": jpegs}), directory=str(directory))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HttpVideoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
