"""Pages rendered by a real headless Chromium (``kind = "browser"``), for announcement pages that are
single-page apps: their HTML is a script, and the notices appear only after it runs.

One browser per process, started on the first browser poll, renders every browser source; a
semaphore lets a few pages (``[browser] pages``) render at once, each in its own context that is
closed right after, so nothing (cookies, storage, memory) carries over between polls. Chromium and
playwright's driver hold a few hundred MB, and browser sources poll every hour or two, so the browser
is closed when no page has been rendered for ``[browser] keep_alive`` (and with the app), and started
again by the next poll that needs it. Playwright's async API runs in one thread of its own, since its objects belong to the thread
that made them while polls run on the daemon's worker threads.

What a page may load is limited: requests to hosts other than the page's are aborted unless the
source lists them in ``allow_hosts`` (a tracker or a CDN that hangs cannot stall a poll, and the
monitor talks to no one the operator did not name), and images, media and fonts are never loaded.
Each render is capped in time; the page's HTML is capped in size like any fetch.

Playwright is an optional extra (``pip install 'policy-monitor[browser]'``); it drives an installed
Chromium (Debian's ``/usr/bin/chromium``) rather than downloading its own.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import shutil
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable
from urllib.parse import urlsplit

from monitor.config import BrowserConfig, SourceConfig
from monitor.sources.fetch import FetchError, FetchResult

log = logging.getLogger("monitor.browser")

INSTALL_HINT = ("kind = \"browser\" needs the browser extra: pip install 'policy-monitor[browser]' "
                "(from a clone: .venv/bin/pip install -e '.[browser]'), and a Chromium "
                "(Debian: apt-get install chromium)")
ARGS = ["--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--mute-audio"]
_SKIPPED_TYPES = {"image", "media", "font"}


class BrowserError(FetchError):
    """The page could not be rendered (no playwright, no Chromium, an error status, a time-out)."""


def executable(settings: BrowserConfig) -> str | None:
    """The Chromium to drive: the configured one, else one on PATH, else playwright's own (None)."""
    if settings.executable:
        return settings.executable
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def host_allowed(host: str, page_host: str, allow: list[str] | tuple[str, ...]) -> bool:
    """The page's own host, or one matching an ``allow_hosts`` pattern (``*.alicdn.com``)."""
    host = host.lower()
    return host == page_host.lower() or any(fnmatch.fnmatchcase(host, p.lower()) for p in allow)


class Browser:
    """The process's one headless Chromium; thread-safe, started lazily, restarted if it dies."""

    def __init__(self, settings: BrowserConfig, user_agent: str, max_bytes: int,
                 politeness: Callable[[str], AbstractContextManager[None]] | None = None) -> None:
        self.settings = settings
        self.user_agent = user_agent
        self.max_bytes = max_bytes
        self.politeness = politeness or (lambda _host: nullcontext())
        self._lock = threading.RLock()
        self._active = 0
        self._idle: threading.Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._pages: asyncio.Semaphore | None = None
        self.renders = 0

    # -- life cycle ------------------------------------------------------------------------------
    def _run(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise BrowserError(f"the browser did not answer within {timeout:g}s") from None

    def _ensure(self) -> None:
        with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                raise BrowserError(INSTALL_HINT) from None
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="browser", daemon=True)
                self._thread.start()
                self._loop = loop

            async def launch() -> None:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                args = list(ARGS)
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
                path = executable(self.settings)
                try:
                    self._browser = await self._playwright.chromium.launch(
                        executable_path=path, args=args, headless=True, handle_sigint=False,
                        handle_sigterm=False, handle_sighup=False)
                except Exception as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise BrowserError(f"cannot start Chromium ({path or 'playwright default'}): {first}; "
                                       f"{INSTALL_HINT}") from None
                self._pages = asyncio.Semaphore(self.settings.pages)
                log.info("browser started: %s (%s), %d pages at a time", path or "playwright's chromium",
                         self._browser.version, self.settings.pages)

            self._run(launch(), 60)

    @property
    def running(self) -> bool:
        return self._browser is not None

    def close(self) -> None:
        with self._lock:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            if self._loop is None:
                return

            async def stop() -> None:
                if self._browser is not None:
                    await self._browser.close()
                if self._playwright is not None:
                    await self._playwright.stop()

            try:
                self._run(stop(), 30)
            except Exception:  # closing is best effort: the process is going away
                log.debug("browser close failed", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop.close()
            self._loop = self._thread = self._browser = self._playwright = None

    # -- rendering -------------------------------------------------------------------------------
    def render(self, cfg: SourceConfig, timeout: float | None = None) -> FetchResult:
        """The page of ``cfg`` after its scripts ran (until ``selectors.wait_for`` is in the page, or
        the network is idle), as a FetchResult holding the rendered HTML."""
        total = timeout or self.settings.timeout.total_seconds()
        host = (urlsplit(cfg.url).hostname or "").lower()
        with self.politeness(host):
            with self._lock:
                self._active += 1
                if self._idle is not None:
                    self._idle.cancel()
                    self._idle = None
            try:
                self._ensure()
                started = time.monotonic()
                # The render waits for a free page first: its own time cap starts when it has one.
                result: FetchResult = self._run(self._render(cfg, total), total + 60)
            finally:
                with self._lock:
                    self._active -= 1
                    if self._active == 0 and self._browser is not None:
                        self._idle = threading.Timer(self.settings.keep_alive.total_seconds(), self._close_idle)
                        self._idle.daemon = True
                        self._idle.start()
        self.renders += 1
        log.debug("source=%s rendered in %.2fs", cfg.name, time.monotonic() - started)
        return result

    def _close_idle(self) -> None:
        with self._lock:
            if self._active or self._browser is None or self._idle is not threading.current_thread():
                return  # a render started meanwhile (and perhaps a newer timer)
            self._idle = None
            log.info("browser closed after %s without a page to render", self.settings.keep_alive)
            self.close()

    async def _render(self, cfg: SourceConfig, total: float) -> FetchResult:
        assert self._pages is not None
        async with self._pages:
            try:
                return await asyncio.wait_for(self._page(cfg, total), total + 5)
            except asyncio.TimeoutError:
                raise BrowserError(f"the page took longer than {total:g}s to render") from None

    async def _page(self, cfg: SourceConfig, total: float) -> FetchResult:
        from playwright.async_api import Error as PlaywrightError, TimeoutError as PlaywrightTimeout

        page_host = (urlsplit(cfg.url).hostname or "").lower()
        blocked: list[str] = []

        async def route(r: Any) -> None:
            req = r.request
            host = (urlsplit(req.url).hostname or "").lower()
            if req.resource_type in _SKIPPED_TYPES:
                await r.abort("blockedbyclient")
            elif host_allowed(host, page_host, cfg.allow_hosts):
                await r.continue_()
            else:
                blocked.append(host)
                await r.abort("blockedbyclient")

        deadline = time.monotonic() + total
        context = await self._browser.new_context(user_agent=self.user_agent, service_workers="block",
                                                  extra_http_headers=dict(cfg.headers) or None,
                                                  accept_downloads=False)
        try:
            await context.route("**/*", route)
            page = await context.new_page()
            wait_for = cfg.selectors.wait_for
            try:
                response = await page.goto(cfg.url, timeout=total * 1000,
                                           wait_until="domcontentloaded" if wait_for else "networkidle")
            except PlaywrightTimeout:
                raise BrowserError(f"the page did not {'load' if wait_for else 'become idle'} within {total:g}s"
                                   + ("" if wait_for else " (set selectors.wait_for to wait for the notices "
                                                          "instead of an idle network)")) from None
            except PlaywrightError as exc:
                raise BrowserError(f"cannot load {cfg.url}: {str(exc).splitlines()[0]}") from None
            if response is None:
                raise BrowserError(f"no response from {cfg.url}")
            if response.status >= 400:
                raise BrowserError(f"HTTP {response.status} {response.status_text} from {response.url}")
            if wait_for:
                left = max(0.1, deadline - time.monotonic())
                try:
                    await page.wait_for_selector(wait_for, state="attached", timeout=left * 1000)
                except PlaywrightTimeout:
                    raise BrowserError(f"selectors.wait_for {wait_for!r} did not appear within {total:g}s "
                                       "(did the page change?)") from None
            html = await page.content()
            final_url = page.url
        finally:
            await context.close()
        if blocked:
            log.debug("source=%s blocked requests to %s", cfg.name, ", ".join(sorted(set(blocked))))
        data = html.encode("utf-8")
        if len(data) > self.max_bytes:
            raise BrowserError(f"the rendered page of {len(data)} bytes exceeds the cap of {self.max_bytes}")
        return FetchResult(status=response.status, url=final_url, content=data,
                           headers={"content-type": "text/html; charset=utf-8"})
