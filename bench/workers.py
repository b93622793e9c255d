#!/usr/bin/env python3
"""Scale-out: 1, 2 and 3 daemons on one PostgreSQL database over the same local sources.

    .venv/bin/python bench/workers.py [--sources 3000] [--items 1] [--seconds 60] [--interval 20]
                                      [--daemons 1,2,3] [--workers 8] [--quick]

One local server (bench/feedserver.py, in its own process) serves the feeds and receives the alerts
as webhooks (apprise's json://). For each daemon count, a fresh database is created on
127.0.0.1:5432 (trust auth, as the tests use) and dropped afterwards; that many `policy-monitor run`
processes share it for --seconds, with every source polled every --interval seconds. Printed per
count: polls per second (requests the server answered over the window), the first cycle's length
(every source fetched, stored and extracted once) and the poll rate after it (mostly 304s),
duplicate polls (the same source fetched twice less than half an interval apart: what the poll leases
exist to prevent, since a daemon's own scheduler never does that), and deliveries: the alerts the
webhook received, and duplicates (one change delivered twice; must be 0).

--quick: 300 sources, 25 s a run, interval 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))

import feedserver  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def policy_monitor() -> list[str]:
    script = Path(sys.executable).with_name("policy-monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def create_db() -> str:
    import psycopg

    name = f"pm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def counts_in(name: str) -> tuple[int, int, int]:
    """Changes, outbox rows sent, and outbox rows in any other state."""
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}") as conn:
        changes = conn.execute("SELECT count(*) FROM changes").fetchone()
        sent = conn.execute("SELECT count(*) FROM outbox WHERE status = 'sent'").fetchone()
        other = conn.execute("SELECT count(*) FROM outbox WHERE status <> 'sent'").fetchone()
        return int(changes[0]) if changes else 0, int(sent[0]) if sent else 0, int(other[0]) if other else 0


def write_config(path: Path, db: str, port: int, n: int, interval: int, workers: int) -> None:
    lines = [f'[storage]\nurl = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"\n',
             f'[fetch]\nworkers = {workers}\nhost_concurrency = {workers * 4}\nhost_delay = "0s"\ntimeout = "30s"\n',
             f'[daemon]\njitter = "{max(1, interval // 4)}s"\ndeliver_every = "2s"\nshutdown_grace = "5s"\n',
             f'[[notify]]\nname = "hook"\nurl = "json://127.0.0.1:{port}/hook"\nreminders = false\n']
    lines += [f'[[sources]]\nname = "feed-{i}"\nurl = "http://127.0.0.1:{port}/feed/{i}.xml"\ninterval = "{interval}s"\n'
              for i in range(n)]
    path.write_text("\n".join(lines), encoding="utf-8")


def one_run(daemons: int, port: int, args: argparse.Namespace, tmp: Path) -> None:
    db = create_db()
    d = tmp / f"d{daemons}"
    d.mkdir()
    try:
        write_config(d / "monitor.toml", db, port, args.sources, args.interval, args.workers)
        # the schema first, so the timed window is polling, not three processes racing to migrate
        subprocess.run(policy_monitor() + ["sources", "--config", str(d / "monitor.toml")], cwd=d,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        feedserver.stats(port, reset=True)
        logs = [open(d / f"daemon{k}.log", "w") for k in range(daemons)]
        started = time.time()
        procs = [subprocess.Popen(policy_monitor() + ["run", "--config", str(d / "monitor.toml")], cwd=d,
                                  stdout=subprocess.DEVNULL, stderr=logs[k]) for k in range(daemons)]
        time.sleep(args.seconds)
        window = time.time() - started
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()
        s = feedserver.stats(port)
        polls = [(i, t) for i, t in s["polls"] if t <= started + window]
        by_source: dict[int, list[float]] = {}
        for i, t in polls:
            by_source.setdefault(i, []).append(t)
        duplicates = sum(1 for times in by_source.values() for a, b in zip(sorted(times), sorted(times)[1:])
                         if b - a < args.interval / 2)
        first_times = sorted(min(times) for times in by_source.values())
        first_cycle = (first_times[-1] - started) if len(first_times) >= args.sources else float("nan")
        # after the first cycle (every source fetched and extracted once) polls are mostly 304s
        after = [t for _i, t in polls if t > started + first_cycle]
        steady = (f"{len(after) / (window - first_cycle):6.1f} polls/s after it"
                  if first_cycle == first_cycle and window - first_cycle >= 10 else "  (no steady part)")
        # A duplicate delivery is one outbox row sent twice: the webhook got more messages than rows
        # were marked sent (a row sent and not yet marked when the daemon stopped would count too).
        received = len(s["hooks"])
        changes, sent, unsent = counts_in(db)
        duplicated = max(0, received - sent)
        tracebacks = sum((d / f"daemon{k}.log").read_text(errors="replace").count("Traceback") for k in range(daemons))
        print(f"{daemons} daemon{'s' if daemons > 1 else ' '}  {len(polls) / window:7.1f} polls/s  "
              f"({len(polls)} in {window:.0f} s; {s['200']} x 200, {s['304']} x 304)  "
              f"first cycle {first_cycle:5.1f} s, {steady}  duplicate polls {duplicates}  "
              f"{changes} changes, {sent} deliveries sent ({unsent} not yet), webhook got {received}: duplicated {duplicated}  "
              f"tracebacks {tracebacks}", flush=True)
    finally:
        drop_db(db)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int)
    ap.add_argument("--items", type=int, default=1)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--interval", type=int)
    ap.add_argument("--daemons", default="1,2,3")
    ap.add_argument("--workers", type=int, default=8, help="fetch.workers of each daemon")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    args.sources = args.sources or (300 if args.quick else 3000)
    args.seconds = args.seconds or (25 if args.quick else 60)
    args.interval = args.interval or (10 if args.quick else 20)
    try:
        import psycopg

        with psycopg.connect(ADMIN, connect_timeout=3):
            pass
    except Exception as exc:  # no server, no driver
        raise SystemExit(f"PostgreSQL at 127.0.0.1:5432 is needed ({type(exc).__name__}: {exc})")
    server, port = feedserver.start(args.sources, args.items, recent=True)
    tmp = Path(tempfile.mkdtemp(prefix="pm-bench-workers-"))
    print(f"{args.sources} local sources x {args.items} item, interval {args.interval} s, {args.seconds} s a run, "
          f"{args.workers} fetch workers per daemon; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    try:
        for n in (int(x) for x in args.daemons.split(",")):
            one_run(n, port, args, tmp)
    finally:
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
