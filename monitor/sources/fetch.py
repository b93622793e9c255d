"""HTTP fetching that respects servers and survives hostile ones.

Conditional GET (ETag / Last-Modified) so an unchanged source costs one small request and no parse;
a per-host limit on concurrent requests and a minimum delay between them, and ``Retry-After``
honoured on 429/503, so a site is not hammered; hard caps on time, size (counted after
decompression) and redirects so one bad server can never stall a poll or exhaust memory; and for
links the monitor follows on its own, only public http(s) addresses (no loopback, private or
link-local targets unless the operator allows them).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Iterator
from urllib.parse import urlsplit

import httpx

from monitor import __version__


class FetchError(Exception):
    """The fetch failed; the message is what the user sees in `sources` (no secrets in it)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 20.0          # whole request, first byte to last
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


def check_public(url: str) -> None:
    """Refuse a link that is not http(s) or whose host resolves to a non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused to follow {url!r}: only http(s) links are followed")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {parts.hostname}: {exc.strerror}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise FetchError(f"refused to follow {url!r}: {parts.hostname} is a private, loopback or "
                             f"link-local address ({addr}); set fetch.allow_private = true to allow it")


class Fetcher:
    """One per process: a shared connection pool plus per-host politeness state."""

    def __init__(self, limits: FetchLimits) -> None:
        self.limits = limits
        self._client = httpx.Client(follow_redirects=True, max_redirects=limits.max_redirects,
                                    proxy=limits.proxy or None, trust_env=False,
                                    timeout=httpx.Timeout(limits.timeout, connect=limits.connect_timeout),
                                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(limits.host_concurrency))
        self._next_start: dict[str, float] = defaultdict(float)
        self._blocked_until: dict[str, float] = {}

    def close(self) -> None:
        self._client.close()

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
        point to a public address unless fetch.allow_private is set. ``method``, ``body`` and
        ``headers`` serve JSON APIs (a POST with a query in its body; ``headers`` replace the defaults).
        """
        limits = self.limits
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"{url!r} is not an http(s) URL")
        if followed and not limits.allow_private:
            check_public(url)
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
            return self._get(url, headers, total, method, body)

    def _get(self, url: str, headers: dict[str, str], total: float, method: str = "GET",
             body: bytes | None = None) -> FetchResult:
        limits = self.limits
        deadline = time.monotonic() + total
        try:
            with self._client.stream(method, url, headers=headers, content=body,
                                     timeout=httpx.Timeout(total, connect=min(limits.connect_timeout, total))) as resp:
                if resp.status_code == 304:
                    return FetchResult(304, str(resp.url), etag=headers.get("If-None-Match"),
                                       last_modified=headers.get("If-Modified-Since"))
                if resp.status_code in (429, 503):
                    wait = _retry_after(resp.headers.get("retry-after"), limits.max_retry_after)
                    if wait:
                        self._blocked_until[(resp.url.host or "").lower()] = time.monotonic() + wait
                    raise FetchError(f"HTTP {resp.status_code} {resp.reason_phrase} from {resp.url}"
                                     + (f" (Retry-After {wait:.0f}s)" if wait else ""), retry_after=wait)
                if resp.status_code >= 400:
                    raise FetchError(f"HTTP {resp.status_code} {resp.reason_phrase} from {resp.url}")
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
        except FetchError:
            raise
        except httpx.TooManyRedirects:
            raise FetchError(f"more than {limits.max_redirects} redirects")
        except httpx.TimeoutException as exc:
            raise FetchError(f"timed out after {total:g}s ({type(exc).__name__})")
        except httpx.ConnectError as exc:
            raise FetchError(f"cannot connect to {httpx.URL(url).host}: {exc or 'connection failed'}")
        except httpx.DecodingError as exc:
            raise FetchError(f"cannot decode the response body: {exc}")
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def fetch(url: str, limits: FetchLimits, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
    """One fetch with a throwaway Fetcher (for scripts and tests; the pipeline shares one)."""
    f = Fetcher(limits)
    try:
        return f.fetch(url, etag, last_modified)
    finally:
        f.close()
