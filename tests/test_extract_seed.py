"""`policy-monitor extract` on the seed article: the first acceptance case of the project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import load_seed


def run_extract(records: list[dict], tmp_path: Path) -> list[dict]:  # type: ignore[type-arg]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "monitor", "extract", "--input", str(src), "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_seed_is_caught_with_every_field(tmp_path: Path, shared: Path) -> None:
    seed = load_seed(shared)
    [result] = run_extract([{"id": "seed", "title": seed["title"], "published": seed["published"].isoformat(),
                             "lang": "zh", "body": seed["body"]}], tmp_path)
    assert result["id"] == "seed"
    [change] = result["changes"]  # the 2020 Douyin mention is background, not a second change
    assert change["platform"] == "kuaishou"
    assert change["targets"] == ["taobao", "jd"]
    assert change["action"] == "ban"
    assert change["link_type"] == "affiliate"
    assert change["effective_date"] == "2022-03-01"
    assert "3月1日起" in change["evidence"] and "淘宝" in change["evidence"]
    assert 0.5 <= change["confidence"] <= 1


def test_output_keeps_input_order_and_reports_empty_lists(tmp_path: Path) -> None:
    results = run_extract([
        {"id": "a", "title": "New phone released", "published": None, "lang": "en", "body": "A phone with a camera."},
        {"id": "b", "title": "", "published": "2023-04-10T02:00:00+00:00", "lang": "zh",
         "body": "<p>4月15日起，拼多多商品链接将无法在抖音直播间购物车中发布。</p>"},
        {"id": "c", "title": "x", "published": "2017-08", "body": "nothing here"},
    ], tmp_path)
    assert [r["id"] for r in results] == ["a", "b", "c"]
    assert results[0]["changes"] == [] and results[2]["changes"] == []
    assert results[1]["changes"][0]["platform"] == "douyin"
    assert results[1]["changes"][0]["effective_date"] == "2023-04-15"


def test_bad_input_line_is_named(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "ok", "title": "t", "body": "b"}\nnot json\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "monitor", "extract", "--input", str(src)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1 and f"{src}:2:" in proc.stderr
