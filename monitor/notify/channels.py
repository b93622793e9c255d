"""The only place that talks to apprise.

Apprise URLs carry passwords and tokens, so this module is also where they are masked: nothing
else prints a notifier URL.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import apprise

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


def send_bounded(url: str, title: str, body: str, body_format: str, timeout: float) -> SendResult:
    """``send`` with a hard time limit, so a hung channel cannot stall the delivery of others."""
    box: list[SendResult] = []
    worker = threading.Thread(target=lambda: box.append(send(url, title, body, body_format)), daemon=True,
                              name="apprise-send")
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not box:
        return SendResult(False, f"no answer within {timeout:g}s (delivery.timeout)")
    return box[0]


def send(url: str, title: str, body: str, body_format: str = "text") -> SendResult:
    """Send one message to one apprise URL; the error, if any, is apprise's own words, masked."""
    a = apprise.Apprise()
    if not a.add(url):
        return SendResult(False, "notifier URL is not understood by apprise")
    fmt = {"text": apprise.NotifyFormat.TEXT, "markdown": apprise.NotifyFormat.MARKDOWN,
           "html": apprise.NotifyFormat.HTML}[body_format]
    try:
        result = a.notify(title=title, body=body, body_format=fmt)
    except Exception as exc:  # a plugin bug must not take the delivery loop down
        return SendResult(False, f"{type(exc).__name__}: {exc}")
    if result:
        return SendResult(True)
    messages = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    error = "; ".join(dict.fromkeys(messages)) or "apprise reported a failure"
    return SendResult(False, error.replace(url, mask(url)))
