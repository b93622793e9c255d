"""HTTP fetching that respects servers and survives hostile ones.

Conditional GET (ETag / Last-Modified) so an unchanged feed costs one small request and no parse;
hard caps on time, size (counted after decompression) and redirects so one bad server can never
stall a poll or exhaust memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from monitor import __version__


class FetchError(Exception):
    """The fetch failed; the message is what the user sees in `sources` (no secrets in it)."""


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 20.0          # whole request, first byte to last
    connect_timeout: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = f"policy-monitor/{__version__}"


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


def fetch(url: str, limits: FetchLimits, etag: str | None = None, last_modified: str | None = None,
          client: httpx.Client | None = None) -> FetchResult:
    """GET ``url`` with the validators of the last successful poll; raise FetchError on any failure."""
    headers = {"User-Agent": limits.user_agent, "Accept-Encoding": "gzip, deflate",
               "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                         "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    timeout = httpx.Timeout(limits.timeout, connect=limits.connect_timeout)
    own = client is None
    http = client or httpx.Client(follow_redirects=True, max_redirects=limits.max_redirects, timeout=timeout)
    deadline = time.monotonic() + limits.timeout
    try:
        with http.stream("GET", url, headers=headers, timeout=timeout) as resp:
            if resp.status_code == 304:
                return FetchResult(304, str(resp.url), etag=etag, last_modified=last_modified)
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
                    raise FetchError(f"response exceeds the cap of {limits.max_bytes} bytes (after decompression)")
                if time.monotonic() > deadline:
                    raise FetchError(f"response took longer than {limits.timeout:g}s")
                chunks.append(chunk)
            return FetchResult(
                status=resp.status_code, url=str(resp.url), content=b"".join(chunks),
                headers={k.lower(): v for k, v in resp.headers.items()},
                etag=resp.headers.get("etag"), last_modified=resp.headers.get("last-modified"),
            )
    except FetchError:
        raise
    except httpx.TooManyRedirects:
        raise FetchError(f"more than {limits.max_redirects} redirects")
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out after {limits.timeout:g}s ({type(exc).__name__})")
    except httpx.ConnectError as exc:
        host = httpx.URL(url).host
        raise FetchError(f"cannot connect to {host}: {exc or 'connection failed'}")
    except httpx.DecodingError as exc:
        raise FetchError(f"cannot decode the response body: {exc}")
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    finally:
        if own:
            http.close()
