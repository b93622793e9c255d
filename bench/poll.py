#!/usr/bin/env python3
"""The poll loop, side by side with urlwatch on the same local feeds, and the daemon's memory.

    .venv/bin/python bench/poll.py [--feeds 500] [--items 20] [--repeat 3] [--urlwatch PATH | --no-urlwatch]
                                   [--rss-sources 1000] [--quick]
    .venv/bin/python bench/poll.py --in-process [--feeds 1000] [--workers 16] [--database URL]

One local server (bench/feedserver.py, in its own process) serves --feeds RSS feeds of --items items
with ETags. Then, in one run:

1. `policy-monitor once` as a subprocess (process start included) on a config of those feeds
   (SQLite, 10 workers, no per-host delay: all feeds are on one host), and urlwatch on a urls.yaml of
   the same feeds (its own 10 workers), each from an empty state (the fresh cycle) and then again
   --repeat times, interleaved (the unchanged cycle: every feed answers 304 to policy-monitor; the
   server counts what each tool actually got). urlwatch comes from --urlwatch PATH, else from a
   throwaway venv under /tmp that this script fills from PyPI; without either the comparison is
   skipped with a message.
2. `policy-monitor run` with --rss-sources loopback sources (interval 1 min) until it has polled them
   all twice; its VmRSS and VmHWM from /proc.

--in-process keeps the earlier measurement: the pipeline called in this process, no start-up.
--quick: 100 feeds, 5 items, one repeat, 200 sources for the memory part.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py (named by its issue) would shadow the standard library's http package: the bench
# folder goes last on the path, not first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))

import feedserver  # noqa: E402

URLWATCH_VENV = Path(tempfile.gettempdir()) / "pm-bench-urlwatch"


def policy_monitor() -> list[str]:
    script = Path(sys.executable).with_name("policy-monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def write_config(path: Path, db: Path, port: int, n: int, interval: str = "15m", extra: str = "") -> None:
    lines = [f'[storage]\nurl = "sqlite:///{db}"\n',
             '[fetch]\nworkers = 10\nhost_concurrency = 10\nhost_delay = "0s"\ntimeout = "30s"\n', extra]
    lines += [f'[[sources]]\nname = "feed-{i}"\nurl = "http://127.0.0.1:{port}/feed/{i}.xml"\ninterval = "{interval}"\n'
              for i in range(n)]
    path.write_text("\n".join(lines), encoding="utf-8")


def timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:2])} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed, proc.returncode


def find_urlwatch(given: str | None) -> str | None:
    if given:
        return given if Path(given).exists() or shutil.which(given) else None
    exe = URLWATCH_VENV / "bin" / "urlwatch"
    if exe.exists():
        return str(exe)
    print(f"installing urlwatch into {URLWATCH_VENV} (a throwaway venv, from PyPI) ...", flush=True)
    try:
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(URLWATCH_VENV)], check=True,
                       capture_output=True)
        subprocess.run([str(URLWATCH_VENV / "bin" / "pip"), "install", "-q", "urlwatch"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"could not install urlwatch ({type(exc).__name__}); the comparison is skipped")
        return None
    return str(exe) if exe.exists() else None


def counts(port: int) -> str:
    s = feedserver.stats(port, reset=True)
    return f"server answered {s['200']} x 200, {s['304']} x 304"


def side_by_side(port: int, n: int, repeat: int, urlwatch: str | None, tmp: Path) -> None:
    pm_dir, uw_dir = tmp / "pm", tmp / "uw"
    pm_dir.mkdir()
    uw_dir.mkdir()
    write_config(pm_dir / "monitor.toml", pm_dir / "monitor.db", port, n)
    pm = policy_monitor() + ["once", "-q", "--config", str(pm_dir / "monitor.toml")]
    (uw_dir / "urls.yaml").write_text("\n---\n".join(f"name: feed-{i}\nurl: http://127.0.0.1:{port}/feed/{i}.xml"
                                                     for i in range(n)) + "\n", encoding="utf-8")
    uw = None if urlwatch is None else [urlwatch, "--urls", "urls.yaml", "--config", "urlwatch.yaml",
                                         "--hooks", "hooks.py", "--cache", "cache.db"]
    feedserver.stats(port, reset=True)
    print(f"\n== one cycle over {n} local feeds, process start included ==")
    fresh_pm, _ = timed(pm, pm_dir)
    print(f"policy-monitor once, fresh      {fresh_pm:7.2f} s  {fresh_pm / n * 1000:6.2f} ms/source   ({counts(port)})")
    fresh_uw = None
    if uw:
        fresh_uw, _ = timed(uw, uw_dir)
        print(f"urlwatch, fresh                 {fresh_uw:7.2f} s  {fresh_uw / n * 1000:6.2f} ms/source   "
              f"({counts(port)})")
    same_pm: list[float] = []
    same_uw: list[float] = []
    for _ in range(repeat):  # interleaved, so both see the same load on a shared machine
        same_pm.append(timed(pm, pm_dir)[0])
        pm_counts = counts(port)
        if uw:
            same_uw.append(timed(uw, uw_dir)[0])
            uw_counts = counts(port)
    p = statistics.median(same_pm)
    print(f"policy-monitor once, unchanged  {p:7.2f} s  {p / n * 1000:6.2f} ms/source   "
          f"(median of {repeat}: {', '.join(f'{x:.2f}' for x in same_pm)}; last: {pm_counts})")
    if not uw or fresh_uw is None:
        print("urlwatch: not available (give --urlwatch PATH); no comparison")
        return
    u = statistics.median(same_uw)
    print(f"urlwatch, unchanged             {u:7.2f} s  {u / n * 1000:6.2f} ms/source   "
          f"(median of {repeat}: {', '.join(f'{x:.2f}' for x in same_uw)}; last: {uw_counts})")
    print(f"unchanged: urlwatch / policy-monitor = {u / p:.2f}x  (target >= 2x: {'met' if u / p >= 2 else 'missed'})")
    print(f"fresh: policy-monitor / urlwatch = {fresh_pm / fresh_uw:.2f}x  "
          f"(target <= 3x: {'met' if fresh_pm / fresh_uw <= 3 else 'missed'})")


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def daemon_memory(port: int, n: int, tmp: Path, interval: int) -> None:
    d = tmp / "daemon"
    d.mkdir()
    db = d / "monitor.db"
    write_config(d / "monitor.toml", db, port, n, interval=f"{interval}s",
                 extra=f'[daemon]\njitter = "{max(1, interval // 6)}s"\n')
    print(f"\n== policy-monitor run with {n} loopback sources (interval {interval} s) ==")
    feedserver.stats(port, reset=True)
    started = time.monotonic()
    proc = subprocess.Popen(policy_monitor() + ["run", "--config", str(d / "monitor.toml")], cwd=d,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen: dict[str, float] = {}
        deadline = started + 30 * interval + 600
        while time.monotonic() < deadline:
            time.sleep(1)
            polls = feedserver.stats(port)["polls"]
            per: dict[int, int] = {}
            for i, _t in polls:
                per[i] = per.get(i, 0) + 1
            if "all once" not in seen and len(per) >= n:
                seen["all once"] = time.monotonic() - started
            if len(per) >= n and min(per.values()) >= 2:
                seen["all twice"] = time.monotonic() - started
                break
        time.sleep(2)  # the second cycle's bookkeeping is written within about a second
        mem = _status(proc.pid)
        with sqlite3.connect(db) as conn:
            ok = conn.execute("SELECT count(*) FROM sources WHERE status = 'ok'").fetchone()[0]
            entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        print(f"every source polled once after {seen.get('all once', float('nan')):.0f} s, twice after "
              f"{seen.get('all twice', float('nan')):.0f} s; {ok} sources ok, {entries} entries stored")
        print(f"daemon VmRSS {mem.get('VmRSS')} MB, VmHWM (peak) {mem.get('VmHWM')} MB  "
              f"(target <= 150 MB: {'met' if max(mem.values()) <= 150 else 'missed'})")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def in_process(args: argparse.Namespace) -> None:
    """The earlier measurement: the pipeline in this process, no process start."""
    from monitor.app import App
    from monitor.config import Config, Settings
    from monitor.pipeline import poll

    server, port = feedserver.start(args.feeds, args.items)
    tmp = tempfile.mkdtemp(prefix="pm-bench-")
    url = args.database or f"sqlite:///{tmp}/bench.db"
    settings = Settings.model_validate({
        "storage": {"url": url},
        "fetch": {"workers": args.workers, "host_concurrency": args.workers, "host_delay": "0s", "timeout": "30s"},
        "sources": [{"name": f"feed-{i}", "url": f"http://127.0.0.1:{port}/feed/{i}.xml", "interval": "15m"}
                    for i in range(args.feeds)],
    })
    app = App.open(Config(Path(tmp) / "bench.toml", settings))
    _ = app.extractor, app.planner
    print(f"{args.feeds} feeds x {args.items} items, {args.workers} workers, database {url.split('://')[0]}")
    for label in ("fresh", "304"):
        started = time.perf_counter()
        with app.ledger.batched(), ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(lambda cfg: poll(app, cfg), settings.sources))
        elapsed = time.perf_counter() - started
        failed = [o for o in outcomes if not o.ok]
        print(f"cycle {label:5}  {elapsed:6.2f} s   {len(outcomes) / elapsed:7.0f} fetches/s   "
              f"new entries {sum(o.new_entries for o in outcomes):6}   changes {sum(o.changes for o in outcomes):5}"
              f"   failed {len(failed)}" + (f" (first: {failed[0].error})" if failed else ""))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB (the polling process: pipeline and database client; the server runs apart)")
    app.close()
    server.terminate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=None, help="feeds in the side-by-side cycles (500)")
    ap.add_argument("--items", type=int, default=None, help="items per feed (20)")
    ap.add_argument("--repeat", type=int, default=None, help="unchanged cycles per tool (3)")
    ap.add_argument("--urlwatch", help="the urlwatch executable (else a throwaway venv under /tmp)")
    ap.add_argument("--no-urlwatch", action="store_true")
    ap.add_argument("--rss-sources", type=int, default=None, help="sources of the memory run (1000; 0: skip)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--in-process", action="store_true")
    ap.add_argument("--workers", type=int, default=16, help="--in-process: threads")
    ap.add_argument("--database", help="--in-process: database URL (default a fresh SQLite file)")
    args = ap.parse_args()
    quick = args.quick
    args.feeds = args.feeds or (100 if quick else 1000 if args.in_process else 500)
    args.items = args.items or (5 if quick else 20)
    args.repeat = args.repeat or (1 if quick else 3)
    rss = args.rss_sources if args.rss_sources is not None else (200 if quick else 1000)
    if args.in_process:
        in_process(args)
        return
    urlwatch = None if args.no_urlwatch else find_urlwatch(args.urlwatch)
    if urlwatch is None and not args.no_urlwatch:
        print("urlwatch is not available: the comparison is skipped (give --urlwatch PATH)")
    server, port = feedserver.start(max(args.feeds, rss), args.items)
    tmp = Path(tempfile.mkdtemp(prefix="pm-bench-poll-"))
    print(f"{args.feeds} feeds x {args.items} items on 127.0.0.1:{port}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    try:
        side_by_side(port, args.feeds, args.repeat, urlwatch, tmp)
        if rss:
            daemon_memory(port, rss, tmp, interval=20 if quick else 60)
    finally:
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
