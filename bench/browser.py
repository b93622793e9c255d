#!/usr/bin/env python3
"""What a browser source costs: time and memory per poll, and the daemon with five of them.

    .venv/bin/python bench/browser.py [--polls 10] [--seconds 60] [--interval 10s]

A local server (its own process) serves announcement pages that are single-page apps: a shell page
loads a 300 KB script bundle, which asks a JSON endpoint for the notices and writes the list. Then:

1. one ``kind = "browser"`` source is polled --polls times through policy-monitor's own pipeline (the
   first poll starts Chromium), beside a ``kind = "json"`` source reading the same endpoint; printed:
   the browser's start, the time per poll, and the memory of this process and of the browser's
   processes (RSS, and PSS, which counts pages shared between Chromium's processes once);
2. ``policy-monitor run`` (the daemon) with five browser sources polled every --interval for
   --seconds, sampled every second: the daemon process's own RSS, and the PSS and RSS of its whole
   process tree (the playwright driver and Chromium's processes included).

Needs Chromium (Debian's chromium) and playwright (the browser extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would shadow the standard library's http package: drop this folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app import App  # noqa: E402
from monitor.config import Config, Settings  # noqa: E402
from monitor.pipeline import poll  # noqa: E402

SHELL = """<!doctype html><html><head><meta charset="utf-8"><title>规则中心 {n}</title>
<script src="/static/vendor.js"></script></head><body><div id="app">加载中…</div><script>
fetch('/api/notices/{n}').then(r => r.json()).then(d => {{
  const ul = document.createElement('ul'); ul.id = 'notices';
  for (const x of d.data.list) {{
    const li = document.createElement('li'); const a = document.createElement('a');
    a.href = '/notice/' + x.id; a.textContent = x.title;
    const s = document.createElement('span'); s.className = 'date';
    s.textContent = new Date(x.publishTime).toISOString().slice(0, 10);
    li.append(a, s); ul.append(li);
  }}
  document.getElementById('app').replaceChildren(ul);
}});
</script></body></html>"""


def vendor_js() -> bytes:
    """A stand-in for an SPA's framework bundle: 300 KB of functions the page must parse and run."""
    parts = ["window.__vendor = {};"]
    i = 0
    while sum(map(len, parts)) < 300_000:
        parts.append(f"window.__vendor.f{i} = function(a, b) {{ const o = {{k: a, v: b, i: {i}}}; "
                     f"return JSON.stringify(o).length + (a || 0) * {i % 7}; }};")
        i += 1
    parts.append("for (let i = 0; i < 2000; i++) window.__vendor['f' + (i % 100)](i, 'x');")
    return "\n".join(parts).encode()


def notices(n: int) -> bytes:
    rows = [{"id": n * 100 + j, "title": f"关于调整第{n}类商品链接管理规范的公告（第{j}号）",
             "publishTime": 1681092000000 - j * 86_400_000, "content": "<p>" + "规则正文。" * 50 + "</p>"}
            for j in range(20)]
    return json.dumps({"code": 0, "data": {"list": rows}}, ensure_ascii=False).encode()


def _serve_forever(ready: "multiprocessing.Queue[int]") -> None:
    vendor = vendor_js()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_a: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path.startswith("/rules/"):
                body, ctype = SHELL.format(n=int(path.rsplit("/", 1)[1])).encode(), "text/html; charset=utf-8"
            elif path.startswith("/api/notices/"):
                body, ctype = notices(int(path.rsplit("/", 1)[1])), "application/json"
            elif path == "/static/vendor.js":
                body, ctype = vendor, "application/javascript"
            else:
                body, ctype = b"not found", "text/plain"
            self.send_response(200 if ctype != "text/plain" else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


# -- memory of a process tree (Linux /proc) ----------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def _kb(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int) -> float:
    return _kb(pid, "status", "VmRSS") / 1024


def tree_mb(pid: int, exclude_self: bool = False) -> tuple[float, float]:
    """(PSS, RSS) in MB of ``pid`` and its descendants (without ``pid`` itself when asked)."""
    pids = [p for p in tree(pid) if not (exclude_self and p == pid)]
    return (sum(_kb(p, "smaps_rollup", "Pss") for p in pids) / 1024,
            sum(_kb(p, "status", "VmRSS") for p in pids) / 1024)


# -- 1. one browser source, polled in process --------------------------------------------------------
def per_poll(port: int, polls: int, folder: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    settings = Settings.model_validate({
        "storage": {"url": f"sqlite:///{folder / 'bench.db'}"},
        "fetch": {"host_delay": "0s"},
        "sources": [
            {"name": "spa", "kind": "browser", "url": f"{base}/rules/0", "lang": "zh",
             "selectors": {"item": "#notices li", "date": ".date", "wait_for": "#notices li"}},
            {"name": "spa-idle", "kind": "browser", "url": f"{base}/rules/1", "lang": "zh",
             "selectors": {"item": "#notices li", "date": ".date"}},
            {"name": "api", "kind": "json", "url": f"{base}/api/notices/0", "lang": "zh",
             "selectors": {"items": "data.list", "title": "title", "link": "join('', ['/notice/', to_string(id)])",
                           "date": "publishTime", "body": "content"}},
        ]})
    app = App.open(Config(folder / "bench.toml", settings))
    _ = app.extractor
    me = os.getpid()
    base_rss = rss_mb(me)
    times: dict[str, list[float]] = {"spa": [], "spa-idle": [], "api": []}
    started = 0.0
    for i in range(polls):
        for cfg in settings.sources:
            t = time.perf_counter()
            out = poll(app, cfg)
            took = time.perf_counter() - t
            assert out.ok, out.error
            if i == 0 and cfg.name == "spa":
                started = took
            else:
                times[cfg.name].append(took)
    pss, rss = tree_mb(me, exclude_self=True)
    print(f"1. one source, {polls} polls each (the same 20 notices every time, so only the first poll stores them)")
    print(f"   first browser poll (starts Chromium): {started:.2f} s")
    for name, label in (("spa", "browser, wait_for the list"), ("spa-idle", "browser, network idle"),
                        ("api", "json, the same notices")):
        xs = times[name]
        print(f"   {label:28s} per poll: median {statistics.median(xs) * 1000:6.0f} ms, max {max(xs) * 1000:6.0f} ms")
    print(f"   this process: RSS {base_rss:.0f} MB before the browser, {rss_mb(me):.0f} MB after")
    print(f"   the browser's processes (driver + Chromium) after {app.browser.renders} renders: "
          f"PSS {pss:.0f} MB, RSS {rss:.0f} MB (summed)")
    app.close()


# -- 2. the daemon with five browser sources ---------------------------------------------------------
def daemon(port: int, seconds: float, interval: str, folder: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    lines = [f'[storage]\nurl = "sqlite:///{folder / "daemon.db"}"\n',
             '[fetch]\nhost_delay = "0s"\nhost_concurrency = 8\n', '[daemon]\njitter = "1s"\n']
    for i in range(5):
        lines.append(f'[[sources]]\nname = "spa-{i}"\nkind = "browser"\nurl = "{base}/rules/{i}"\n'
                     f'interval = "{interval}"\nlang = "zh"\n'
                     'selectors = { item = "#notices li", date = ".date", wait_for = "#notices li" }\n')
    cfg = folder / "daemon.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(cfg)], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    own, pss_max, rss_max = 0.0, 0.0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        own = max(own, rss_mb(proc.pid))
        pss, rss = tree_mb(proc.pid)
        pss_max, rss_max = max(pss_max, pss), max(rss_max, rss)
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    polls = err.count("polled:")
    print(f"2. policy-monitor run with five browser sources, every {interval}, {seconds:.0f} s ({polls} polls)")
    print(f"   daemon process RSS: peak {own:.0f} MB")
    print(f"   daemon + playwright driver + Chromium: peak PSS {pss_max:.0f} MB, peak RSS {rss_max:.0f} MB (summed)")
    print(f"   exit status after SIGTERM: {proc.returncode}")
    if proc.returncode != 0:
        print(err[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--polls", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--interval", default="10s")
    args = ap.parse_args()
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve_forever, args=(ready,), daemon=True)
    server.start()
    port = ready.get(timeout=30)
    with tempfile.TemporaryDirectory() as tmp:
        per_poll(port, args.polls, Path(tmp))
        daemon(port, args.seconds, args.interval, Path(tmp))
    server.terminate()


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
