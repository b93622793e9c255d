"""Running the ASGI app on uvicorn: in the foreground (``policy-monitor serve``) or in a thread of
the daemon (``[http] listen``).

The socket is bound before uvicorn starts, by the caller's thread, so a port already in use is a
clear error at start rather than a log line from a background thread. uvicorn's own signal
handling is left out: the owner (the serve command, the daemon) decides what SIGTERM means and
asks the server to finish, so the process exits 0 after in-flight requests are answered.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any, Iterator

import uvicorn

from monitor.config import parse_listen

log = logging.getLogger("monitor.web")


class ListenError(Exception):
    """The address cannot be listened on (in use, not an address of this machine, no permission)."""


def bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so that asyncio turns Nagle off on each connection (it checks the protocol):
    # without it a response sent in two writes waits 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the owner handles signals and sets should_exit


class HTTPServer:
    """uvicorn serving ``asgi`` on an already bound socket."""

    def __init__(self, asgi: Any, sock: socket.socket, access_log: bool = False) -> None:
        self.sock = sock
        # log_config=None: uvicorn's lines go through the process's own handlers, so they take the form
        # [log] format asks for (a JSON log stays one object per line) instead of uvicorn's own.
        # (log_level "warning" would also silence the access lines `serve -v` asks for.)
        config = uvicorn.Config(asgi, log_level="info" if access_log else "warning", access_log=access_log,
                                lifespan="off", log_config=None,
                                server_header=False, proxy_headers=True, timeout_graceful_shutdown=10)
        self.server = _Server(config)
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def run(self) -> None:
        """Serve in this thread until ``stop()``."""
        self.server.run(sockets=[self.sock])

    def start(self) -> None:
        """Serve in a background thread."""
        self.thread = threading.Thread(target=self.run, name="http", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 15) -> None:
        """Stop accepting, let in-flight requests finish, and wait for the thread."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()
