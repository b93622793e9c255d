"""The fetcher against a real local HTTP server: conditional GET, compression, and the caps that keep
a hostile server from stalling a poll or exhausting memory."""

from __future__ import annotations

import gzip
import time
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import HTTPServer, Route
from monitor.sources.fetch import FetchError, FetchLimits, fetch

LIMITS = FetchLimits(timeout=2.0, connect_timeout=1.0, max_bytes=100_000, max_redirects=3)


def test_gzip_body_is_decompressed(http: HTTPServer) -> None:
    http.routes["/f"] = Route(b"<rss>" + b"x" * 5000 + b"</rss>", gzip=True)
    result = fetch(http.url("/f"), LIMITS)
    assert result.content.startswith(b"<rss>") and len(result.content) == 5011


def test_etag_gives_304_without_body(http: HTTPServer) -> None:
    http.routes["/f"] = Route(b"<rss/>", etag='"abc"')
    first = fetch(http.url("/f"), LIMITS)
    assert first.etag == '"abc"' and not first.not_modified
    second = fetch(http.url("/f"), LIMITS, etag=first.etag)
    assert second.not_modified and second.content == b""


def test_gzip_bomb_stops_at_the_cap(http: HTTPServer) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # 50 MB that travels as ~50 KB
    http.routes["/bomb"] = Route(handler=lambda h: _raw(h, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchError, match="cap of 100000 bytes"):
        fetch(http.url("/bomb"), LIMITS)


def test_declared_oversize_refused_before_download(http: HTTPServer) -> None:
    http.routes["/big"] = Route(b"x" * 200_000)
    with pytest.raises(FetchError, match="exceeds the cap"):
        fetch(http.url("/big"), LIMITS)


def test_redirect_loop_is_capped(http: HTTPServer) -> None:
    http.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(http.url("/loop"), LIMITS)


def test_slow_drip_hits_the_total_deadline(http: HTTPServer) -> None:
    def drip(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.end_headers()
        try:
            for _ in range(100):  # one byte every 0.2 s: never idle long enough for a read timeout
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    http.routes["/drip"] = Route(handler=drip)
    started = time.monotonic()
    with pytest.raises(FetchError, match="longer than 2s|timed out"):
        fetch(http.url("/drip"), LIMITS)
    assert time.monotonic() - started < 10


def test_connection_refused_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot connect to 127.0.0.1"):
        fetch("http://127.0.0.1:9/nothing", LIMITS)


def _raw(h: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/xml")
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    try:
        h.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass
