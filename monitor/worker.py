"""Who holds a poll lease: an id per process that also says where it runs.

Leases expire on their own, which is what makes them safe with several machines. The id carries the
host name, the boot, the PID namespace and the PID, so a process starting on the same machine can
tell a lease left by a killed process (its PID gone) from one held by a live neighbour, and free it
at once instead of waiting for it to expire (``dead_here``). Anything it cannot be sure of it leaves
to expiry.
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import lru_cache


def _boot() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()[:8]
    except OSError:
        return "noboot"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "nons"


@lru_cache(maxsize=1)
def _place() -> str:
    return f"{socket.gethostname()[:60]}/{_boot()}/{_pid_namespace()}"


def worker_id() -> str:
    """A new id for this process: place, PID and a random part (so a reused PID is another owner)."""
    return f"{_place()}/{os.getpid()}/{secrets.token_hex(4)}"


def dead_here(owner: str) -> bool:
    """True only when ``owner`` ran on this machine, in this boot and PID namespace, and its process
    no longer exists."""
    place, _, rest = owner.rpartition("/")[0].rpartition("/")
    if place != _place() or not rest.isdigit():
        return False
    pid = int(rest)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
