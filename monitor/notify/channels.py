"""The only place that talks to apprise.

Apprise URLs carry passwords and tokens, so this module is also where they are masked: nothing
else prints a notifier URL.

A send is bounded twice. The caller stops waiting at the delivery limit, and apprise's own socket
timeouts are set a few seconds past it, so every connect and read of the channel ends by itself and
an abandoned send cannot hang for ever. When the caller stops waiting: a send that has not answered by then may still complete (an SMTP server that
accepted the message but is slow to say so), so its outcome is *unknown*, not failed. The outbox
never retries an unknown send on its own: a retry could only add a copy (see README, "Delivery").
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable

import apprise

from monitor.sanitize import for_display, mask_urls_in

_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/@\s]+)@", re.IGNORECASE)


def check_url(url: str) -> str | None:
    """Why apprise cannot use this URL, or None when it can."""
    if not url.strip():
        return "is empty"
    if not apprise.Apprise().add(url):
        return (f"{mask(url)!r} is not a notification URL apprise understands "
                "(examples in README, section 'Notifiers')")
    return None


def mask(url: str) -> str:
    """The URL with credentials and tokens hidden, as apprise itself shows it in privacy mode."""
    a = apprise.Apprise()
    if a.add(url):
        return str(a[0].url(privacy=True))
    # Not an apprise URL: hide any user:password@ part and everything after the scheme's host.
    m = _USERINFO.match(url)
    if m:
        return m.group(1) + "****@" + url[m.end():].split("/", 1)[0]
    return url.split("://", 1)[0] + "://****" if "://" in url else "****"


@dataclass(frozen=True)
class Channel:
    """What a channel accepts: its native body format and its body length limit."""

    format: str
    body_limit: int | None


def describe(url: str) -> Channel:
    a = apprise.Apprise()
    if not a.add(url):
        return Channel("text", None)
    plugin = a[0]
    native = plugin.notify_format
    if isinstance(native, (tuple, list)):
        native = native[0]
    fmt = str(getattr(native, "value", native))
    limit = int(plugin.body_maxlen) if getattr(plugin, "body_maxlen", 0) else None
    return Channel(fmt if fmt in ("text", "markdown", "html") else "text", limit)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str | None = None
    unknown: bool = False   # it may have gone out: no answer in time, or the channel timed out mid-send


_TIMED_OUT = re.compile(r"timed out|timeout", re.I)
#: How much longer than delivery.timeout each of the channel's socket operations may take.
SOCKET_SLACK = 5.0


def send_bounded(url: str, title: str, body: str, body_format: str, timeout: float,
                 late: Callable[[SendResult], None] | None = None) -> SendResult:
    """``send`` with a hard time limit, so a hung channel cannot stall the delivery of others. When
    the limit passes first, the result is unknown; ``late`` is told the real outcome if the send
    still ends while this process runs."""
    box: list[SendResult] = []
    lock = threading.Lock()
    abandoned = threading.Event()

    def work() -> None:
        result = send(url, title, body, body_format, timeout)
        with lock:
            box.append(result)
            gone = abandoned.is_set()
        if gone and late is not None:
            try:
                late(result)
            except Exception:  # pragma: no cover - the database gone: the row stays "unknown"
                pass

    worker = threading.Thread(target=work, daemon=True, name="apprise-send")
    worker.start()
    worker.join(timeout)
    with lock:
        if box:
            return box[0]
        abandoned.set()
    return SendResult(False, f"no answer within {timeout:g}s (delivery.timeout): it may have been sent",
                      unknown=True)


def send(url: str, title: str, body: str, body_format: str = "text", timeout: float | None = None) -> SendResult:
    """Send one message to one apprise URL; the error, if any, is apprise's own words, masked.
    ``timeout`` (plus SOCKET_SLACK) bounds each socket operation of the channel (apprise's cto/rto)."""
    a = apprise.Apprise()
    if not a.add(url):
        return SendResult(False, "notifier URL is not understood by apprise")
    if timeout:
        # Each socket operation ends a little after the caller stops waiting: a send slowed by the
        # channel is always abandoned (unknown) before a socket timeout could report it as a plain
        # failure, which would be retried and could add a copy; and the thread still ends soon after.
        plugin = a[0]
        for attr in ("socket_connect_timeout", "socket_read_timeout"):
            if isinstance(getattr(plugin, attr, None), (int, float)):
                setattr(plugin, attr, timeout + SOCKET_SLACK)
    fmt = {"text": apprise.NotifyFormat.TEXT, "markdown": apprise.NotifyFormat.MARKDOWN,
           "html": apprise.NotifyFormat.HTML}[body_format]
    try:
        result = a.notify(title=title, body=body, body_format=fmt)
    except Exception as exc:  # a plugin bug must not take the delivery loop down
        return SendResult(False, mask_urls_in(f"{type(exc).__name__}: {exc}").replace(url, mask(url)))
    if result:
        return SendResult(True)
    entries = list(result.logs())
    messages = [e.message for e in entries if e.level in ("WARNING", "ERROR", "CRITICAL")]
    error = "; ".join(dict.fromkeys(messages)) or "apprise reported a failure"
    # A socket timeout inside the channel (its details are at debug level) may have struck after the
    # message was handed over: as ambiguous as no answer at all.
    timed_out = any(_TIMED_OUT.search(str(e.message)) for e in entries)
    if timed_out:
        error += " (timed out: it may have been sent)"
    return SendResult(False, for_display(error.replace(url, mask(url))), unknown=timed_out)
