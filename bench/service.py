#!/usr/bin/env python3
"""What the service instrumentation costs: the events a poll publishes once metrics, the heartbeat
counts and the log subscribe to them, and a /metrics and /healthz request with many sources.

    .venv/bin/python bench/service.py [--sources 1000] [--events 20000] [--requests 50]

1. The bus: each poll publishes PollFinished and SourcePolled (or SourceFailed); each extracted item
   EntryExtracted. With the daemon's subscribers (Prometheus metrics, heartbeat counts; the log lines
   are left out, they were there before) this times one poll's worth of events, per poll.
2. ``policy-monitor serve`` over a SQLite database with --sources sources (each polled once, half of
   them failing) and as many outbox rows: the median and the 95th percentile of --requests requests
   to /metrics and to /healthz over loopback, and the size of the /metrics body.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would shadow the standard library's http package: drop this folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

import httpx  # noqa: E402


def _config(folder: Path, sources: int) -> Path:
    lines = [f'[storage]\nurl = "sqlite:///{folder / "m.db"}"\n[log]\nheartbeat = "off"\n']
    for i in range(sources):
        lines.append(f'[[sources]]\nname = "s{i}"\nurl = "http://127.0.0.1:9/{i}.xml"\n')
    path = folder / "monitor.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def bus_cost(config: Path, events: int) -> None:
    from monitor.app import App
    from monitor.config import load
    from monitor.events import EntryExtracted, PollFinished, SourceFailed, SourcePolled
    from monitor.service import Counts

    logging.getLogger("monitor").setLevel(logging.CRITICAL)   # the log lines predate this work
    app = App.open(load(config, secrets=False))
    _ = app.metrics
    Counts(app.bus)
    polls = events // 4
    start = time.perf_counter()
    for i in range(polls):
        name = f"s{i % 100}"
        app.bus.publish(EntryExtracted(name, 0.004, 0))
        if i % 2:
            app.bus.publish(SourcePolled(name, 1, 1, False))
        else:
            app.bus.publish(SourceFailed(name, "HTTP 500", 1))
        app.bus.publish(PollFinished(name, True, 0.02))
    per_poll = (time.perf_counter() - start) / polls
    print(f"bus: {polls} polls' events (SourcePolled|SourceFailed, PollFinished, one EntryExtracted) with "
          f"metrics and heartbeat subscribed: {per_poll * 1e6:.1f} µs per poll")
    app.close()


def _seed(config: Path, sources: int) -> None:
    from monitor import clock
    from monitor.app import App
    from monitor.config import load
    from monitor.store import repo
    from monitor.store.models import Delivery

    app = App.open(load(config, secrets=False))
    now = clock.utcnow()
    with app.sessions.begin() as s:
        for i in range(sources):
            src = repo.get_source(s, f"s{i}")
            if i % 2:
                repo.record_success(s, src, now, timedelta(minutes=15), None, None, 0, owner=app.owner)
            else:
                repo.record_failure(s, src, now, "HTTP 500", timedelta(minutes=15), timedelta(hours=6),
                                    owner=app.owner)
            s.add(Delivery(notifier="ops", kind="ops", key=f"k{i}", status="dead" if i % 3 == 0 else "pending",
                           next_attempt=now, created_at=now))
    app.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_cost(config: Path, sources: int, requests: int) -> None:
    _seed(config, sources)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "serve", "--config", str(config), "--listen",
                             f"127.0.0.1:{port}"], env=env, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for path in ("/metrics", "/healthz"):
            times = []
            size = 0
            for _ in range(requests):
                t0 = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t0)
                size = len(r.content)
                assert r.status_code == 200, r.text
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{path}: {sources} sources, {requests} requests: median {statistics.median(times) * 1e3:.1f} ms, "
                  f"p95 {p95 * 1e3:.1f} ms, body {size / 1024:.0f} KiB")
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), args.sources)
        bus_cost(config, args.events)
        http_cost(config, args.sources, args.requests)


if __name__ == "__main__":
    main()
