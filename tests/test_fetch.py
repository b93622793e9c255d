"""The fetcher against a real local HTTP server: conditional GET, compression, and the caps that keep
a hostile server from stalling a poll or exhausting memory."""

from __future__ import annotations

import gzip
import time
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import HTTPServer, Route, wait_for
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


# -- hardening (issue 13) --------------------------------------------------------------------------
def _drip_headers(h: BaseHTTPRequestHandler) -> None:
    """Headers one byte at a time, 0.5 s apart: a minute of headers, never idle long enough for a
    read timeout."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nX-Padding: " + b"x" * 60 + b"\r\n\r\n"
    try:
        for i in range(len(head)):
            h.wfile.write(head[i:i + 1])
            h.wfile.flush()
            time.sleep(0.5)
        h.wfile.write(b"<rss/>")
    except (BrokenPipeError, ConnectionResetError):
        pass
    h.close_connection = True


def test_headers_dripped_a_byte_at_a_time_hit_the_whole_request_deadline(http: HTTPServer) -> None:
    http.routes["/drip"] = Route(handler=_drip_headers)
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 2s"):
        fetch(http.url("/drip"), LIMITS)
    assert time.monotonic() - started < 30  # the drip lasts a minute; the deadline is 2 s


def test_a_redirect_from_a_public_address_to_loopback_is_refused_at_the_hop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.2 plays a public server that answers 302 to a loopback page; the hop is refused
    before a byte is sent to it."""
    from monitor.sources import fetch as fetch_module
    from monitor.sources.fetch import Fetcher

    monkeypatch.setattr(fetch_module, "is_public", lambda address: address == "127.0.0.2")
    inside = HTTPServer("127.0.0.1")
    outside = HTTPServer("127.0.0.2")
    try:
        inside.routes["/secret"] = Route(b"<rss><channel><item><title>internal</title></item></channel></rss>")
        outside.routes["/go"] = Route(status=302, headers={"Location": inside.url("/secret")})
        outside.routes["/feed"] = Route(b"<rss/>")
        f = Fetcher(LIMITS)
        try:
            assert f.fetch(outside.url("/feed"), followed=True).content == b"<rss/>"  # public: fine
            with pytest.raises(FetchError, match=r"refused to follow http://127\.0\.0\.1:\d+/secret.*\(127\.0\.0\.1\)"):
                f.fetch(outside.url("/go"), followed=True)
        finally:
            f.close()
        assert outside.hits["/go"] == 1 and "/secret" not in inside.hits
    finally:
        inside.close()
        outside.close()


def test_a_configured_url_may_redirect_on_its_own_host_but_not_to_another_private_one(http: HTTPServer) -> None:
    other = HTTPServer("127.0.0.2")
    try:
        other.routes["/feed"] = Route(b"<rss/>")
        http.routes["/moved"] = Route(status=301, headers={"Location": "/feed"})
        http.routes["/feed"] = Route(b"<rss>here</rss>")
        http.routes["/away"] = Route(status=302, headers={"Location": other.url("/feed")})
        assert fetch(http.url("/moved"), LIMITS).content == b"<rss>here</rss>"
        with pytest.raises(FetchError, match="refused to follow"):
            fetch(http.url("/away"), LIMITS)
        assert "/feed" not in other.hits
        allowed = FetchLimits(timeout=2.0, connect_timeout=1.0, allow_private=True)
        assert fetch(http.url("/away"), allowed).content == b"<rss/>"
    finally:
        other.close()


def test_the_address_checked_is_the_one_connected_to_not_a_separate_lookup(
        http: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: a lookup made to check a name can say "public" while the connection, a moment
    later, goes to loopback. Here any such separate lookup is fooled (check_public passes
    everything) and the name connects to 127.0.0.1: the request is still refused, because the
    address checked is the socket's peer."""
    import socket

    from monitor.sources import fetch as fetch_module
    from monitor.sources.fetch import Fetcher

    monkeypatch.setattr(fetch_module, "check_public", lambda url: None)
    real = socket.getaddrinfo

    def rebinding(host: object, *args: object, **kwargs: object) -> object:
        return real("127.0.0.1" if host == "rebind.test" else host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    http.routes["/admin"] = Route(b"<rss/>")
    f = Fetcher(LIMITS)
    try:
        port = http.server.server_address[1]
        with pytest.raises(FetchError, match=r"\(127\.0\.0\.1\)"):
            f.fetch(f"http://rebind.test:{port}/admin", followed=True)
    finally:
        f.close()
    assert "/admin" not in http.hits


def test_errors_never_show_credentials_or_query_values(http: HTTPServer) -> None:
    http.routes["/feed"] = Route(b"no", status=500, content_type="text/plain")
    url = http.url("/feed").replace("http://", "http://alice:s3cret@") + "?token=t0ken&page=2"
    with pytest.raises(FetchError) as err:
        fetch(url, LIMITS)
    message = str(err.value)
    assert "HTTP 500" in message and "token=***" in message
    assert "s3cret" not in message and "alice" not in message and "t0ken" not in message


def test_abort_ends_a_stuck_request_at_once(http: HTTPServer) -> None:
    import threading

    from monitor.sources.fetch import Fetcher

    http.routes["/drip"] = Route(handler=_drip_headers)
    f = Fetcher(FetchLimits(timeout=120.0, connect_timeout=1.0))
    errors: list[FetchError] = []

    def run() -> None:
        try:
            f.fetch(http.url("/drip"))
        except FetchError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(lambda: http.hits.get("/drip"), timeout=10, every=0.05)
    f.abort()
    worker.join(timeout=30)
    assert not worker.is_alive() and errors and errors[0].aborted
    f.close()


def test_a_kept_alive_connection_the_server_drops_is_not_a_failure() -> None:
    """A server that answers once per connection, keeps it open, then drops it at the next request
    without a word (as servers behind idle timeouts and restarts do): the fetcher's next GET goes
    out again on a new connection instead of failing the source."""
    import socket
    import threading

    from monitor.sources.fetch import Fetcher

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    connections: list[socket.socket] = []
    answered: list[int] = []

    def serve(conn: socket.socket) -> None:
        requests = 0
        buf = b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _head, buf = buf.split(b"\r\n\r\n", 1)
                requests += 1
                if requests > 1:  # the second request on this connection: drop it unanswered
                    conn.close()
                    return
                answered.append(len(connections))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 13\r\n"
                             b"Connection: keep-alive\r\n\r\n<rss>ok</rss>")

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    from dataclasses import replace

    fetcher = Fetcher(replace(LIMITS, host_delay=0.0))
    try:
        for _ in range(3):
            result = fetcher.fetch(f"http://127.0.0.1:{port}/feed.xml")
            assert result.status == 200 and result.content == b"<rss>ok</rss>"
        # each fetch after the first met a dropped connection and went out again on a new one
        assert len(answered) == 3 and len(connections) >= 3
    finally:
        fetcher.close()
        listener.close()
        for conn in connections:
            conn.close()
