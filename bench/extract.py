#!/usr/bin/env python3
"""Throughput and peak memory of the extractor on one core.

    .venv/bin/python bench/extract.py [--corpus ../shared/corpus/dev.jsonl] [--articles 10000]

Repeats the corpus until --articles articles have been extracted, in this one process (one core),
and prints articles per second (overall, and for articles of median length), and peak RSS. The
extractor is the whole of it: annotation, the rules, and the trained model's decisions. Besides wall
time it prints CPU time, which a busy shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py (named by its issue) would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from monitor.extract import Extractor  # noqa: E402
from monitor.extract.records import read_articles  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append",
                    help="labeled or unlabeled JSON Lines (default: every ../shared/corpus/*.jsonl)")
    ap.add_argument("--articles", type=int, default=10_000)
    args = ap.parse_args()
    corpora = args.corpus or sorted(str(p) for p in (ROOT.parent / "shared" / "corpus").glob("*.jsonl"))
    articles = [a for c in corpora for a in read_articles(Path(c).read_text(encoding="utf-8").splitlines(), c)]
    extractor = Extractor()
    extractor.extract(articles[0])  # load the lexicon and OpenCC outside the timing

    per_article: list[tuple[int, float]] = []
    found = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    n = 0
    while n < args.articles:
        for a in articles:
            t0 = time.perf_counter()
            found += bool(extractor.extract(a))
            per_article.append((len(a.body), time.perf_counter() - t0))
            n += 1
            if n >= args.articles:
                break
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    sizes = sorted(s for s, _ in per_article)
    median = statistics.median(sizes)
    near = [t for s, t in per_article if 0.8 * median <= s <= 1.2 * median]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"articles            {n} ({len(articles)} distinct, repeated)")
    print(f"total time          {elapsed:.2f} s")
    print(f"throughput          {n / elapsed:.0f} articles/s (all articles, wall time); "
          f"{n / cpu:.0f} articles/s of CPU time")
    print(f"median article      {median:.0f} characters of body; {1 / statistics.mean(near):.0f} articles/s "
          f"for articles within 20% of it")
    print(f"slowest article     {max(t for _, t in per_article) * 1000:.1f} ms")
    print(f"peak RSS            {peak_mb:.0f} MB")
    print(f"articles with changes {found}")


if __name__ == "__main__":
    main()
