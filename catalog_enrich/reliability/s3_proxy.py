"""A pass-through proxy in front of the S3 server that throttles a share of object reads.

It answers some GETs the way S3 does under load (503 ``SlowDown``) and forwards everything else byte for
byte, Host header included, so request signatures made for the proxy's address still verify upstream.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)

#: headers that describe one hop, never forwarded
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class ThrottlingProxy(ThreadingHTTPServer):
    """Listens on a free loopback port and forwards to ``upstream``, throttling ``share`` of object GETs."""

    daemon_threads = True

    def __init__(self, upstream: str, share: float, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.share = share
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.throttled = 0
        self.forwarded = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        """The proxy's endpoint URL, for AWS_ENDPOINT_URL_S3."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def should_throttle(self, method: str, path: str) -> bool:
        """Whether to refuse this request; only object reads (a key after the bucket) are throttled."""
        is_object_get = method == "GET" and "/" in path.lstrip("/").split("?")[0]
        with self.lock:
            refuse = is_object_get and self.random.random() < self.share
            if refuse:
                self.throttled += 1
            else:
                self.forwarded += 1
            return refuse


class _Handler(BaseHTTPRequestHandler):
    server: ThrottlingProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the suite reports counts, not request lines."""

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.server.should_throttle(self.command, self.path):
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_HEADERS}
        upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay


@contextmanager
def throttling_proxy(upstream: str, share: float, seed: int = 0) -> Iterator[ThrottlingProxy]:
    """A running proxy for the block."""
    proxy = ThrottlingProxy(upstream, share, seed)
    thread = threading.Thread(target=proxy.serve_forever, name="s3-throttling-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
