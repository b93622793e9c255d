"""Crash and mutation runs (issue 13).

The crash run SIGKILLs a daemon at random points, cycle after cycle, while local feeds gain new
articles and an SMTP sink on loopback receives the alerts; a last daemon then runs until everything
is settled, and the run counts lost changes, lost deliveries and duplicated deliveries. A kill lands
anywhere: during start-up and migration, a fetch, extraction, a write, a send. Duplicates are the
documented at-least-once window (a kill after the SMTP server accepted a message and before the row
was marked sent), so they are counted and bounded, never zero by assumption.

The mutation run serves every file of ../shared/feeds truncated, byte-flipped, blown up and with a
wrong charset, as sources of one `once`: the process must not crash, and each bad source must fail
alone, with a message.

Both are modest inside `make test`; longer runs print their figures:

    CRASH_KILLS=200 .venv/bin/python -m pytest tests/test_crash.py -k crash -s
    MUTATION_ALL=1 .venv/bin/python -m pytest tests/test_crash.py -k mutation -s
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from conftest import HTTPServer, Project, Route, SMTPServer, wait_for

PLATFORMS = ["快手", "抖音", "小红书", "哔哩哔哩", "微博", "知乎", "百度", "美团"]
TARGETS = ["淘宝", "京东", "拼多多", "天猫"]


def _article(platform: str, target: str, serial: int, now: datetime) -> dict[str, Any]:
    day = (now + timedelta(days=20)).astimezone(timezone(timedelta(hours=8)))
    return {"title": f"{platform}禁止{target}链接（{serial}）", "link": f"http://news.example.org/{serial}",
            "guid": f"crash-{serial}", "published": now,
            "body": f"<p>{platform}宣布，{day.month}月{day.day}日起禁止在{platform}平台发布{target}商品链接。</p>"}


def _rss(items: list[dict[str, Any]]) -> bytes:
    from xml.sax.saxutils import escape

    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>crash</title>']
    for it in reversed(items):  # newest first, as feeds list them
        parts.append(f"<item><title>{escape(it['title'])}</title><link>{it['link']}</link><guid>{it['guid']}</guid>"
                     f"<pubDate>{format_datetime(it['published'])}</pubDate>"
                     f"<description><![CDATA[{it['body']}]]></description></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def crash_run(project: Project, http: HTTPServer, smtp: SMTPServer, kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    combos = [(p, t) for p in PLATFORMS for t in TARGETS]
    rng.shuffle(combos)
    feeds: list[list[dict[str, Any]]] = [[], [], []]
    for i, items in enumerate(feeds):
        http.routes[f"/f{i}.xml"] = Route(_rss(items))
    project.write_config([{"name": f"feed-{i}", "url": http.url(f"/f{i}.xml"), "interval": "2s", "lang": "zh"}
                          for i in range(len(feeds))],
                         [{"name": "mail", "url": smtp.url, "reminders": False}],
                         extra='[daemon]\njitter = "1s"\ndeliver_every = "1s"\nshutdown_grace = "2s"\n')
    log = project.dir / "daemon.log"
    expected: list[tuple[str, str]] = []
    every = max(1, kills // len(combos) + 1)        # spread the articles over the run
    with open(log, "a", encoding="utf-8") as err:
        for k in range(kills):
            if k % every == 0 and combos:
                platform, target = combos.pop()
                feed = rng.randrange(len(feeds))
                feeds[feed].append(_article(platform, target, len(expected), datetime.now(timezone.utc)))
                http.routes[f"/f{feed}.xml"] = Route(_rss(feeds[feed]))
                expected.append((platform, target))
            proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(project.config)],
                                    cwd=project.dir, env=project.environ(), stdout=subprocess.DEVNULL, stderr=err)
            time.sleep(rng.uniform(0.3, 3.5))       # start-up takes about 1.5 s: kills land everywhere
            proc.kill()
            proc.wait()
        final = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(project.config)],
                                 cwd=project.dir, env=project.environ(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            def settled() -> bool:
                changes = _changes(project)
                mailed = _mailed(smtp)
                return len(changes) >= len(expected) and all(mailed.get(c["id"]) for c in changes)

            try:
                wait_for(settled, timeout=90, every=1.0)
            except AssertionError:
                pass  # counted below
            time.sleep(1)
            final.terminate()
            final.wait(timeout=60)
        finally:
            if final.poll() is None:
                final.kill()
    changes = _changes(project)
    mailed = _mailed(smtp)
    found = {(c["platform"], tuple(sorted(c["targets"]))) for c in changes}
    text = log.read_text(encoding="utf-8", errors="replace")
    return {
        "kills": kills, "articles": len(expected), "changes": len(changes),
        "lost_changes": sum(1 for p, t in expected if (_ID[p], (_ID[t],)) not in found),
        "extra_changes": len(changes) - len(found),
        "lost_deliveries": sum(1 for c in changes if not mailed.get(c["id"])),
        "duplicated_deliveries": sum(max(0, mailed.get(c["id"], 0) - 1) for c in changes),
        "tracebacks": text.count("Traceback"),
        "final_exit": final.returncode,
    }


_ID = {"快手": "kuaishou", "抖音": "douyin", "小红书": "xiaohongshu", "哔哩哔哩": "bilibili", "微博": "weibo",
       "知乎": "zhihu", "百度": "baidu", "美团": "meituan", "淘宝": "taobao", "京东": "jd", "拼多多": "pinduoduo",
       "天猫": "tmall"}


def _changes(project: Project) -> list[dict[str, Any]]:
    proc = project.run("changes", "--format", "json")
    return json.loads(proc.stdout) if proc.returncode == 0 else []


def _mailed(smtp: SMTPServer) -> dict[int, int]:
    counts: dict[int, int] = {}
    for text in smtp.texts():
        m = re.search(r"#(\d+)", text.rsplit("变更编号", 1)[-1])
        if m:
            counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


def test_crash_run_loses_nothing(project: Project, http: HTTPServer, smtp: SMTPServer) -> None:
    kills = int(os.environ.get("CRASH_KILLS", "5"))
    figures = crash_run(project, http, smtp, kills, seed=int(os.environ.get("CRASH_SEED", "13")))
    print(f"\ncrash run ({project.database_url.split(':')[0]}): " + json.dumps(figures))
    assert figures["lost_changes"] == 0 and figures["extra_changes"] == 0
    assert figures["lost_deliveries"] == 0
    assert figures["duplicated_deliveries"] <= kills   # each kill can cost at most the one send in flight
    assert figures["tracebacks"] == 0 and figures["final_exit"] == 0


# -- mutation run ----------------------------------------------------------------------------------
def _mutations(data: bytes, rng: random.Random) -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, Content-Type charset to declare, or None for the file's own)."""
    flipped = bytearray(data)
    for _ in range(max(1, len(data) // 200)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    out = {
        "truncated": (data[: rng.randrange(1, max(2, len(data)))], None),
        "flipped": (bytes(flipped), None),
        "wrong-charset": (data, rng.choice(["big5", "utf-16", "koi8-r", "gb18030", "iso-8859-1", "shift_jis"])),
    }
    item = re.search(rb"<(item|entry)[\s>].*?</\1>", data, re.S)
    if item:  # (files without an ASCII item, UTF-16 ones, say, get the other mutations only)
        at = item.end()
        out["huge"] = (data[:at] + item.group(0) * 12_000 + data[at:], None)  # more items than a parser is given
        attrs = b" ".join(b'a%d="x"' % i for i in range(2_000))
        out["attributes"] = (data[:item.start()] + re.sub(rb"^<(item|entry)", rb"<\1 " + attrs, item.group(0))
                             + data[item.end():], None)
    return out


def test_mutation_run_fails_each_bad_source_alone(sqlite_project: Project, http: HTTPServer, shared: Path) -> None:
    rng = random.Random(int(os.environ.get("MUTATION_SEED", "13")))
    files = sorted(p for p in (shared / "feeds").rglob("*") if p.is_file() and p.suffix in (".xml", ".json", ".html"))
    if not os.environ.get("MUTATION_ALL"):
        files = rng.sample(files, 10)
    sources = []
    for f in files:
        for kind, (data, charset) in _mutations(f.read_bytes(), rng).items():
            name = re.sub(r"[^a-z0-9]+", "-", f"{f.stem}-{f.suffix}-{kind}".lower()).strip("-")[:90]
            ctype = "application/json" if f.suffix == ".json" else "application/xml"
            http.routes[f"/{name}"] = Route(data, content_type=ctype + (f"; charset={charset}" if charset else ""))
            sources.append({"name": name, "url": http.url(f"/{name}")})
    sqlite_project.write_config(sources)
    text = sqlite_project.config.read_text().replace('timeout = "3s"', 'timeout = "30s"')
    sqlite_project.config.write_text(text)
    started = time.monotonic()
    proc = sqlite_project.run("once", "-q", timeout=1200)
    elapsed = time.monotonic() - started
    status = {s["name"]: s for s in sqlite_project.json("sources")}
    failing = {n: s["last_error"] for n, s in status.items() if s["status"] == "failing"}
    figures = {"files": len(files), "sources": len(sources), "ok": sum(s["status"] == "ok" for s in status.values()),
               "failed": len(failing), "never": sum(s["status"] == "never" for s in status.values()),
               "internal_errors": sum("internal error" in e for e in failing.values()),
               "process_crashes": int(proc.returncode not in (0, 1) or "Traceback" in proc.stderr),
               "seconds": round(elapsed, 1)}
    print("\nmutation run: " + json.dumps(figures))
    reasons: dict[str, int] = {}
    for error in failing.values():
        key = re.sub(r"\d+", "N", error.split(":")[0])[:60]
        reasons[key] = reasons.get(key, 0) + 1
    print("failures by kind: " + json.dumps(reasons, ensure_ascii=False))
    print("\n".join(f"  {n}: {e}" for n, e in failing.items() if e.startswith("cannot parse")))
    assert figures["process_crashes"] == 0, proc.stderr[-3000:]
    assert figures["never"] == 0 and len(status) == len(sources)
    assert all(error for error in failing.values())                          # each with a message
    assert all(f"error: source {name}: " in proc.stderr for name in failing)  # each reported alone
    bounded = {n: failing.get(n) for n in status if n.endswith(("-attributes", "-huge"))}
    assert all("refused to parse" in (e or "") or "exceeds the cap" in (e or "") for e in bounded.values()), bounded
