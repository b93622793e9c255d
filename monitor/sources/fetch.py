"""HTTP fetching that respects servers and survives hostile ones.

Conditional GET (ETag / Last-Modified) so an unchanged source costs one small request and no parse;
a per-host limit on concurrent requests and a minimum delay between them, and ``Retry-After``
honoured on 429/503, so a site is not hammered; hard caps on time, size (counted after
decompression) and redirects so one bad server can never stall a poll or exhaust memory. The time
cap is one deadline for the whole request, enforced at the socket: every connect, read and write
waits at most until it, so a server that sends its headers a byte a second is cut off like one that
drips its body. For links the monitor follows on its own, and for every redirect to another host,
only public http(s) addresses: redirects are followed here, hop by hop, and the address checked is
the peer of the socket the request is sent on, not a separate DNS answer (no loopback, private or
link-local targets unless the operator allows them).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
import weakref
from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import httpcore
import httpx

from monitor import __version__
from monitor.sanitize import for_display, mask_url, mask_urls_in

log = logging.getLogger("monitor.fetch")


class FetchError(Exception):
    """The fetch failed; the message is what the user sees in `sources` (no secrets in it)."""

    def __init__(self, message: str, retry_after: float | None = None, aborted: bool = False) -> None:
        super().__init__(for_display(message))
        self.retry_after = retry_after
        self.aborted = aborted  # ended by a shutdown, not by the source: not the source's failure


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 20.0          # whole request: connect, TLS, headers, body, every redirect
    connect_timeout: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = f"policy-monitor/{__version__}"
    proxy: str | None = None
    host_concurrency: int = 2
    host_delay: float = 1.0        # seconds between two requests to the same host
    max_retry_after: float = 6 * 3600
    allow_private: bool = False    # for followed links only; configured URLs are trusted


@dataclass(frozen=True)
class FetchResult:
    status: int
    url: str
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), cap))


def is_public(address: str) -> bool:
    """Whether an IP address is on the public Internet (not loopback, private, link-local, ...).

    The one place that decides it, so tests can declare a loopback address "public" to play the
    part of a remote server."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


def check_public(url: str) -> None:
    """Refuse a link that is not http(s) or whose host resolves to a non-public address.

    Only used behind a proxy, where the address connected to is the proxy's: without one, the
    guard checks the peer address of the very socket the request goes out on (see
    ``_GuardedStream``), so a name that resolves once to a public and then to a private address
    (DNS rebinding) is still refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused to follow {mask_url(url)}: only http(s) links are followed")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {parts.hostname}: {exc.strerror}") from exc
    for info in infos:
        if not is_public(str(info[4][0])):
            raise FetchError(_refusal(url, str(info[4][0])))


def _refusal(url: str, address: str) -> str:
    return (f"refused to follow {mask_url(url)}: it leads to a private, loopback or link-local address "
            f"({address}); set fetch.allow_private = true to allow it")


# -- the guard under every request -----------------------------------------------------------------
class _Refused(Exception):
    """The socket is connected to an address the current request may not reach."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address


class _Aborted(Exception):
    """The fetcher was told to stop (shutdown): every request ends at once."""


@dataclass
class _Turn:
    """What the socket layer must enforce for the request being made on this thread: one deadline
    for the whole request (connect, TLS, headers and body; a server dripping its headers a byte a
    second cannot hold it longer than ``fetch.timeout``), and, for links the monitor follows on its
    own, that the peer is a public address."""

    deadline: float
    public_only: bool

    def clamp(self, timeout: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the request's deadline passed")
        return left if timeout is None else min(timeout, left)


_turn: ContextVar[_Turn | None] = ContextVar("fetch_turn", default=None)


class _GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, backend: "_GuardedBackend") -> None:
        self._inner = inner
        self._backend = backend
        backend.track(self)

    def _turn(self) -> _Turn | None:
        if self._backend.aborted:
            raise _Aborted()
        return _turn.get()

    def check_peer(self) -> None:
        turn = self._turn()
        if turn is not None and turn.public_only:
            peer = self._inner.get_extra_info("server_addr")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            if not is_public(address):
                raise _Refused(address)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        turn = self._turn()
        return self._inner.read(max_bytes, turn.clamp(timeout) if turn else timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.check_peer()  # every request, on a new or a reused connection, before a byte of it goes out
        turn = self._turn()
        self._inner.write(buffer, turn.clamp(timeout) if turn else timeout)

    def close(self) -> None:
        self._backend.untrack(self)
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        turn = self._turn()
        inner = self._inner.start_tls(ssl_context, server_hostname, turn.clamp(timeout) if turn else timeout)
        self._backend.untrack(self)
        return _GuardedStream(inner, self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
            except OSError:
                pass


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend with the per-request deadline and address check, and a way to
    end every open request at once (shutdown)."""

    def __init__(self, check_peer: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._check_peer = check_peer
        self._streams: "weakref.WeakSet[_GuardedStream]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self.aborted = False

    def track(self, stream: _GuardedStream) -> None:
        with self._lock:
            self._streams.add(stream)

    def untrack(self, stream: _GuardedStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def abort(self) -> None:
        self.aborted = True
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.shutdown()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        if self.aborted:
            raise _Aborted()
        turn = _turn.get()
        stream = _GuardedStream(self._inner.connect_tcp(host, port, turn.clamp(timeout) if turn else timeout,
                                                        local_address, socket_options), self)
        if self._check_peer:
            try:
                stream.check_peer()
            except BaseException:
                stream.close()
                raise
        return stream

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _transport(limits: FetchLimits, backend: _GuardedBackend) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(proxy=limits.proxy or None, trust_env=False,
                                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    # httpx does not take a network backend; its pool (ConnectionPool, HTTPProxy or SOCKSProxy, all
    # httpcore pools) does. Checked so that an httpx that renames it fails the tests, not silently.
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpx/httpcore version does not expose its connection pool's network backend")
    pool._network_backend = backend
    return transport


_REDIRECTS = (301, 302, 303, 307, 308)


class Fetcher:
    """One per process: a shared connection pool plus per-host politeness state."""

    def __init__(self, limits: FetchLimits) -> None:
        self.limits = limits
        # Behind a proxy the socket's peer is the proxy: links are then checked by name (check_public).
        self._backend = _GuardedBackend(check_peer=not limits.proxy)
        self._client = httpx.Client(follow_redirects=False, transport=_transport(limits, self._backend),
                                    trust_env=False,
                                    timeout=httpx.Timeout(limits.timeout, connect=limits.connect_timeout))
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(limits.host_concurrency))
        self._next_start: dict[str, float] = defaultdict(float)
        self._blocked_until: dict[str, float] = {}

    def close(self) -> None:
        self._client.close()

    def abort(self) -> None:
        """End every request in flight now, and refuse new ones (the process is shutting down)."""
        self._backend.abort()

    @property
    def aborted(self) -> bool:
        return self._backend.aborted

    @contextmanager
    def _host_turn(self, host: str) -> Iterator[None]:
        """Wait for a free slot on ``host`` and for its minimum delay since the previous request."""
        with self._lock:
            slot = self._slots[host]
        slot.acquire()
        try:
            with self._lock:
                start = max(time.monotonic(), self._next_start[host])
                self._next_start[host] = start + self.limits.host_delay
            wait = start - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield
        finally:
            slot.release()

    def host_turn(self, host: str) -> contextlib.AbstractContextManager[None]:
        """The host's politeness (concurrency, delay) for a request made by other means (a browser)."""
        return self._host_turn(host.lower())

    def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None,
              timeout: float | None = None, followed: bool = False, method: str = "GET",
              body: bytes | None = None, headers: dict[str, str] | None = None) -> FetchResult:
        """GET ``url`` with the validators of the last successful poll; raise FetchError on any failure.

        ``followed`` marks a link found in content rather than configured by the operator: it must
        lead to a public address unless fetch.allow_private is set. A redirect to another host is
        checked the same way, whoever configured the first URL; so is the address each request
        is actually sent to.
        ``method``, ``body`` and ``headers`` serve JSON APIs (a POST with a query in its body; ``headers``
        replace the defaults).
        """
        limits = self.limits
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"{mask_url(url)} is not an http(s) URL")
        if self.aborted:
            raise FetchError("stopped: shutting down", aborted=True)
        host = (parts.hostname or "").lower()
        blocked = self._blocked_until.get(host, 0.0) - time.monotonic()
        if blocked > 0:
            raise FetchError(f"{host} asked to wait (Retry-After) for {blocked:.0f}s more", retry_after=blocked)
        total = timeout or limits.timeout
        extra_headers = headers
        headers = {"User-Agent": limits.user_agent, "Accept-Encoding": "gzip, deflate",
                   "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                             "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        headers.update(extra_headers or {})
        with self._host_turn(host):
            return self._get(url, headers, total, trusted=not followed or limits.allow_private, method=method,
                             body=body)

    def _get(self, url: str, headers: dict[str, str], total: float, trusted: bool, method: str = "GET",
             body: bytes | None = None) -> FetchResult:
        limits = self.limits
        deadline = time.monotonic() + total
        request = self._client.build_request(method, url, headers=headers, content=body,
                                             timeout=httpx.Timeout(total, connect=min(limits.connect_timeout, total)))
        hops = 0
        try:
            while True:
                current = str(request.url)
                if not trusted and limits.proxy:
                    check_public(current)
                token = _turn.set(_Turn(deadline, public_only=not trusted))
                try:
                    resp = self._send(request, deadline)
                    try:
                        if resp.status_code in _REDIRECTS and resp.next_request is not None:
                            hops += 1
                            if hops > limits.max_redirects:
                                raise FetchError(f"more than {limits.max_redirects} redirects")
                            following = resp.next_request
                            if following.url.scheme not in ("http", "https"):
                                raise FetchError(f"redirected to {mask_url(str(following.url))}: only http(s) "
                                                 "links are followed")
                            # A redirect stays as trusted as the URL it came from only on the same host.
                            trusted = limits.allow_private or (
                                trusted and (following.url.host or "").lower() == (request.url.host or "").lower())
                            request = following
                            continue
                        return self._read(resp, headers, total, deadline)
                    finally:
                        resp.close()
                finally:
                    _turn.reset(token)
        except FetchError:
            raise
        except _Refused as exc:
            raise FetchError(_refusal(str(request.url), exc.address))
        except _Aborted:
            raise FetchError("stopped: shutting down", aborted=True)
        except httpx.TimeoutException as exc:
            if self.aborted:
                raise FetchError("stopped: shutting down", aborted=True)
            raise FetchError(f"timed out after {total:g}s ({type(exc).__name__})")
        except httpx.ConnectError as exc:
            raise FetchError(f"cannot connect to {request.url.host}: "
                             f"{for_display(mask_urls_in(str(exc))) or 'connection failed'}")
        except httpx.DecodingError as exc:
            raise FetchError(f"cannot decode the response body: {for_display(mask_urls_in(str(exc)))}")
        except httpx.HTTPError as exc:
            if self.aborted:
                raise FetchError("stopped: shutting down", aborted=True)
            text = for_display(mask_urls_in(str(exc)))
            raise FetchError(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """Send ``request``; a GET whose kept-alive connection dies before any answer is sent again
        once, on a new connection (what browsers and urllib3 do): a server that drops idle
        connections is not a failing source."""
        try:
            return self._client.send(request, stream=True)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            if request.method != "GET" or self.aborted or time.monotonic() >= deadline:
                raise
            log.debug("%s: connection lost before an answer (%s); sending again", mask_url(str(request.url)),
                      type(exc).__name__)
            return self._client.send(request, stream=True)

    def _read(self, resp: httpx.Response, headers: dict[str, str], total: float, deadline: float) -> FetchResult:
        limits = self.limits
        shown = mask_url(str(resp.url))
        reason = for_display(resp.reason_phrase)[:100]
        if resp.status_code == 304:
            # A 304 has no body; reading its end lets the connection go back to the pool (closing
            # it unread would drop it, and the next poll of the host would pay a new connect).
            resp.read()
            return FetchResult(304, str(resp.url), etag=headers.get("If-None-Match"),
                               last_modified=headers.get("If-Modified-Since"))
        if resp.status_code in (429, 503):
            wait = _retry_after(resp.headers.get("retry-after"), limits.max_retry_after)
            if wait:
                self._blocked_until[(resp.url.host or "").lower()] = time.monotonic() + wait
            raise FetchError(f"HTTP {resp.status_code} {reason} from {shown}"
                             + (f" (Retry-After {wait:.0f}s)" if wait else ""), retry_after=wait)
        if resp.status_code >= 400:
            raise FetchError(f"HTTP {resp.status_code} {reason} from {shown}")
        if resp.status_code in _REDIRECTS:
            raise FetchError(f"HTTP {resp.status_code} from {shown} without a Location to follow")
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes:
            raise FetchError(f"response of {int(declared)} bytes exceeds the cap of {limits.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():  # decompressed: a gzip bomb hits the cap, not memory
            size += len(chunk)
            if size > limits.max_bytes:
                raise FetchError(f"response exceeds the cap of {limits.max_bytes} bytes "
                                 "(after decompression)")
            if time.monotonic() > deadline:
                raise FetchError(f"response took longer than {total:g}s")
            chunks.append(chunk)
        return FetchResult(status=resp.status_code, url=str(resp.url), content=b"".join(chunks),
                           headers={k.lower(): v for k, v in resp.headers.items()},
                           etag=resp.headers.get("etag"), last_modified=resp.headers.get("last-modified"))


def fetch(url: str, limits: FetchLimits, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
    """One fetch with a throwaway Fetcher (for scripts and tests; the pipeline shares one)."""
    f = Fetcher(limits)
    try:
        return f.fetch(url, etag, last_modified)
    finally:
        f.close()
