"""A tiny sd_notify(3) client: systemd's readiness, status and watchdog messages over a Unix datagram
socket, written with the standard library (no libsystemd binding to install).

Without ``$NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``) every call is a no-op, so the
daemon calls it unconditionally. A send that fails is logged once at debug level and never raises:
systemd being unreachable must not stop the polls.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Mapping

log = logging.getLogger("monitor.sdnotify")


class Notifier:
    """Sends ``KEY=value`` lines to ``$NOTIFY_SOCKET``; reads the watchdog period from the environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or ""
        # An abstract socket is written with a leading '@' and addressed with a leading NUL byte.
        self.address: str | None = ("\0" + address[1:]) if address.startswith("@") else (address or None)
        self.watchdog_seconds = _watchdog_seconds(env)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``lines`` (e.g. ``"READY=1"``, ``"STATUS=..."``); True when it went out."""
        if self.address is None:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
                return True
            except OSError as exc:
                if not self._warned:
                    log.debug("cannot notify systemd at %r: %s", self.address.lstrip("\0"), exc)
                    self._warned = True
                return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """``WatchdogSec=`` as systemd passes it (``$WATCHDOG_USEC``), or None when no watchdog is asked of
    this process: none set, a value that is not a positive number, or ``$WATCHDOG_PID`` naming
    another process (the variables were inherited from a parent that systemd watches)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        return None
    return seconds if seconds > 0 else None
