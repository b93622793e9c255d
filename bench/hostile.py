#!/usr/bin/env python3
"""Parse cost of hostile feeds, raw (feedparser alone) and through policy-monitor's bounded parse.

    .venv/bin/python bench/hostile.py [--attributes 20000] [--items 20000] [--within 5000]

Builds an RSS document with one item carrying --attributes attributes, and one with --items items,
then parses each in a fresh process: with feedparser alone, and with monitor.sources.feeds
(pre-check of tags, attributes and items, then feedparser, then the newest fetch.max_items). Prints
the time and the peak RSS of each. The issue's figures were 100,000 attributes (90 s) and 50,000
items (478 MB): pass those sizes to measure them again (the raw attribute case then takes minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py (named by its issue) would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
mode, path = sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
import feedparser
from monitor.sources.feeds import ParseError, parse_feed_checked
from monitor.sources.limits import newest
started = time.perf_counter()
if mode == "raw":
    n = len(feedparser.parse(data, response_headers={"content-type": "application/rss+xml",
                                                     "content-location": "http://x/"},
                             sanitize_html=False, resolve_relative_uris=False).entries)
    outcome = f"{n} items"
else:
    try:
        n = len(newest(parse_feed_checked(data, {"content-type": "application/rss+xml"}, "http://x/").items, 500))
        outcome = f"{n} items kept"
    except ParseError as exc:
        outcome = str(exc)
print(json.dumps({"seconds": round(time.perf_counter() - started, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "outcome": outcome}))
"""


def documents(attributes: int, items: int, within: int) -> dict[str, bytes]:
    attrs = " ".join(f'a{i}="x"' for i in range(attributes))

    def many(n: int) -> str:
        return "".join(f"<item><title>Item {i}</title><link>http://example.org/{i}</link><guid>g{i}</guid>"
                       f"<description>{'正文内容。' * 40}</description></item>" for i in range(n))

    head = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title>'
    return {f"{attributes} attributes on one item": f"{head}<item {attrs}><title>t</title></item></channel></rss>".encode(),
            f"{items} items": f"{head}{many(items)}</channel></rss>".encode(),
            f"{within} items (within the bounds)": f"{head}{many(within)}</channel></rss>".encode()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attributes", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--within", type=int, default=5_000, help="a feed under the item bound, parsed and capped")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in documents(args.attributes, args.items, args.within).items():
            path = Path(tmp) / "doc.xml"
            path.write_bytes(data)
            for mode in ("raw", "bounded"):
                out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode, str(path)], capture_output=True,
                                     text=True, check=True)
                r = json.loads(out.stdout)
                label = "feedparser alone" if mode == "raw" else "policy-monitor"
                print(f"{name} ({len(data) / 1e6:.1f} MB), {label}: {r['seconds']} s, peak RSS {r['peak_rss_mb']} MB, "
                      f"{r['outcome']}")


if __name__ == "__main__":
    main()
