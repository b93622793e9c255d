"""The learned extractor: figures under leave-events-out cross-validation, a model that `train`
rebuilds byte for byte and that holds no corpus text, `extract --explain`, and a rule on a watched
platform page that is recorded end to end."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HTTPServer, Project
from test_pages import html_route

CORPORA = ("dev.jsonl", "dev2.jsonl")


def _corpora(shared: Path) -> list[Path]:
    return [shared / "corpus" / name for name in CORPORA]


def test_cross_validated_figures_hold(shared: Path) -> None:
    """Leave-events-out, 5 folds, over every labeled file: each item is scored by a model that never
    saw its event. Floors sit a little under today's figures, so a change that makes the extractor
    worse on unseen events fails here (see the README for the figures and the issue's targets)."""
    from monitor.extract import Extractor
    from monitor.extract.evaluate import cross_validate

    report = cross_validate(_corpora(shared), Extractor(), folds=5)
    f = report.figures
    assert f["items"] == 627 and report.folds == 5
    assert f["f1"] >= 0.82, f
    assert f["platform_acc"] >= 0.93, f
    assert f["action_acc"] >= 0.68, f
    assert f["date_acc"] >= 0.52, f
    assert f["invented_dates"] <= 0.05 * f["tp"], f
    for lang, figures in report.by_lang.items():
        assert figures["f1"] >= 0.80, (lang, figures)
    # the same folds every run: nothing random between runs (train's bytes are compared below)
    from monitor.extract.train import assign_folds

    groups = [f"g{i % 37}" for i in range(300)]
    assert assign_folds(groups, 5) == assign_folds(list(groups), 5)
    assert all(len({f for g, f in zip(groups, assign_folds(groups, 5)) if g == x}) == 1 for x in set(groups))


def test_train_is_reproducible_and_the_shipped_model_is_what_it_builds(shared: Path, tmp_path: Path) -> None:
    """`train` in a new process rebuilds the shipped model byte for byte: training is reproducible
    (no randomness between runs or processes), and the model in the package is not stale."""
    from monitor.extract.learned import BUILTIN_MODEL

    out = tmp_path / "model.json.gz"
    proc = subprocess.run([sys.executable, "-m", "monitor", "train", *map(str, _corpora(shared)), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "trained on 627 articles (246 positives)" in proc.stderr
    assert out.stat().st_size < 20 * 1024 * 1024
    assert out.read_bytes() == BUILTIN_MODEL.read_bytes(), \
        "monitor/data/model.json.gz is stale: run `policy-monitor train ../shared/corpus/dev.jsonl " \
        "../shared/corpus/dev2.jsonl --out monitor/data/model.json.gz`"


def test_the_model_holds_weights_not_text(shared: Path) -> None:
    """Hashed n-grams are named by their hash: no word or sentence of the corpus is in the file."""
    from monitor.extract.learned import BUILTIN_MODEL

    model = json.loads(gzip.decompress(BUILTIN_MODEL.read_bytes()))
    names = [k for part in ("sentence", "article", "platform", "action", "date") for k in model[part]["weights"]]
    assert len(names) > 1000
    allowed = re.compile(r"^(?:h:[a-z]+:\d+|[a-z0-9_:&<>.\-]+)$")
    assert [n for n in names if not allowed.match(n)] == []
    assert not any(re.search(r"[\u4e00-\u9fff]", n) for n in names)
    raw = gzip.decompress(BUILTIN_MODEL.read_bytes()).decode("utf-8")
    rows = [json.loads(line) for line in (shared / "corpus" / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    evidence = [r["label"]["evidence"] for r in rows if r["label"].get("evidence")]
    assert not any(e[:24] in raw for e in evidence if len(e) >= 24)


def test_explain_shows_why(tmp_path: Path) -> None:
    line = {"id": "ks", "title": "快手电商：3月1日起禁止直播间挂淘宝、京东链接", "published": "2022-02-26T09:00:00+08:00",
            "lang": "zh", "body": "<p>快手电商发布公告称，3月1日起，淘宝、京东联盟商品链接将无法在快手直播间发布。</p>"}
    proc = subprocess.run([sys.executable, "-m", "monitor", "extract", "--explain"], input=json.dumps(line,
                          ensure_ascii=False), capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    [change] = out["changes"]
    assert (change["platform"], change["action"], change["effective_date"]) == ("kuaishou", "ban", "2022-03-01")
    why = out["explain"]
    assert why["probability"] >= why["threshold"] and abs(why["probability"] - change["confidence"]) < 0.01
    assert why["platforms"][0]["platform"] == "kuaishou" and why["platforms"][0]["features"]
    assert why["dates"][0]["date"] == "2022-03-01"
    assert max(why["actions"], key=why["actions"].get) == "ban"
    assert any("3月1日起" in s["text"] for s in why["sentences"])


def test_bad_model_and_corpus_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "model.json.gz"
    bad.write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-m", "monitor", "extract", "--model", str(bad)], input="",
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "Traceback" not in proc.stderr
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "title": "t", "body": "b"}\n', encoding="utf-8")
    for cmd in (["train", str(corpus)], ["eval", str(corpus), "--folds", "2"]):
        proc = subprocess.run([sys.executable, "-m", "monitor", *cmd], capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)
        assert proc.returncode == 2 and f"{corpus}:1:" in proc.stderr and "label" in proc.stderr, proc.stderr


DOUYIN_PAGE = """<html><head><meta charset="utf-8"><title>巨量星图达人合作规范</title></head><body>
<div id="rules"><h1>巨量星图达人合作规范</h1>
<p>达人应当如实展示合作商品信息。</p>
{extra}</div></body></html>"""


@pytest.mark.parametrize("project_kind", ["sqlite"])
def test_a_new_rule_on_a_watched_douyin_page_is_recorded(sqlite_project: Project, http: HTTPServer,
                                                         project_kind: str) -> None:
    """The issue's example: a `require` rule added to a page the user watches for Douyin."""
    http.routes["/rules"] = html_route(DOUYIN_PAGE.format(extra=""))
    sqlite_project.write_config([{"name": "douyin-xingtu", "kind": "page", "url": http.url("/rules"),
                                  "platform": "douyin", "selector": "#rules", "lang": "zh"}])
    sqlite_project.run("once", now="2020-09-01T10:00:00+08:00", check=0)     # the baseline
    rule = "<p>自 9 月 6 日起,第三方平台商品链接需相关商家通过巨量星图发送任务单给您后,方可进入您直播间购物车。</p>"
    http.routes["/rules"] = html_route(DOUYIN_PAGE.format(extra=rule))
    sqlite_project.run("once", now="2020-09-02T10:00:00+08:00", check=0)
    [change] = sqlite_project.json("changes")
    assert (change["platform"], change["action"], change["effective_date"]) == ("douyin", "require", "2020-09-06")
    assert "巨量星图" in change["evidence"]


PROBES = [  # (title, body, published, platform, action, date) — written for this test, in the style of real rules
    ("", "即日起，小红书笔记中不得再挂淘宝链接。", "2024-05-10T09:00:00+08:00", "xiaohongshu", "ban", "2024-05-10"),
    ("", "Starting March 1, TikTok will allow creators to add one clickable link in their bio.",
     "2024-02-10T09:00:00+00:00", "tiktok", "allow", "2024-03-01"),
    ("", "From next Monday, Weibo users must verify their accounts before posting external links.",
     "2024-02-10T09:00:00+00:00", "weibo", "require", "2024-02-12"),
    ("", "YouTube is limiting the reach of videos that include links to gambling sites.",
     "2024-02-10T09:00:00+00:00", "youtube", "restrict", None),
    ("", "微信将于3月15日起限制小程序跳转第三方App。", "2024-02-10T09:00:00+08:00", "wechat", "restrict", "2024-03-15"),
    ("抖音：下周一起直播间禁止挂拼多多商品链接", "抖音电商发布通知，下周一起，直播间购物车不得添加拼多多商品链接。",
     "2024-02-07T09:00:00+08:00", "douyin", "ban", "2024-02-12"),
    ("", "Bluesky will require a verified domain before accounts can post links to shopping sites, starting April 1.",
     "2024-02-10T09:00:00+00:00", "bluesky", "require", "2024-04-01"),
    ("How to add a link to your Instagram story", "Tap the sticker icon and choose Link. Paste the URL and place it.",
     "2024-02-10T09:00:00+00:00", None, None, None),
    ("京东联盟佣金比例调整", "3月1日起，京东联盟部分类目佣金比例下调至2%。", "2024-02-10T09:00:00+08:00", None, None, None),
]


@pytest.mark.parametrize("title, body, published, platform, action, when", PROBES)
def test_rules_stated_plainly_in_either_language(title: str, body: str, published: str, platform: str | None,
                                                 action: str | None, when: str | None) -> None:
    from datetime import datetime

    from monitor.extract import Article, Extractor

    found = Extractor().extract(Article("p", title, body, datetime.fromisoformat(published)))
    if platform is None:
        assert found == []
        return
    [change] = found
    assert (change.platform, change.action) == (platform, action)
    assert (change.effective_date.isoformat() if change.effective_date else None) == when


def test_a_clause_of_a_rule_speaks_for_the_regulator_that_issued_it() -> None:
    """"第九条 …不得…" names no platform, yet it is the regulator's own rule: the sentence model sees
    a platform behind it when the article names a regulator; an ordinary sentence gets none."""
    from datetime import datetime

    from monitor.extract import Article, Extractor
    from monitor.extract.features import sentence_features

    ex = Extractor()
    body = ("<p>国家网信办近日发布弹窗推送服务管理规定。</p>"
            "<p>第九条 弹窗推送服务提供者不得设置诱导用户点击的外部链接。</p>"
            "<p>业内人士认为此举影响不小。</p>")
    a = ex.annotator.annotate(Article("r", "弹窗推送新规发布", body, datetime.fromisoformat("2022-09-09T10:00:00+08:00")))
    clause = next(s for s in a.sentences if s.text.startswith("第九条"))
    other = next(s for s in a.sentences if s.text.startswith("业内人士"))
    assert not clause.platforms and sentence_features(a, clause).get("plat") == 1.0
    assert sentence_features(a, other).get("plat") is None
    a2 = ex.annotator.annotate(Article("r2", "某公司内部守则", "<p>第九条 员工不得在工作群分享外部链接。</p>", None))
    assert sentence_features(a2, a2.sentences[-1]).get("plat") is None     # no regulator named: no one


@pytest.mark.parametrize("sentence", ["微博即日起暂停文件分享功能", "该网盘关闭了分享按钮", "小程序码将无法在朋友圈识别",
                                      "The share buttons on news articles will be removed",
                                      "Google will shut down its news service in the country"])
def test_share_features_and_news_services_are_links(sentence: str) -> None:
    from monitor.extract import Article, Extractor

    a = Extractor().annotator.annotate(Article("l", sentence, "", None))
    assert a.sentences[0].cues.get("links"), sentence


def test_eval_seeds_repeats_the_cross_validation_and_reports_mean_and_range(shared: Path) -> None:
    """`eval --folds K --seeds N`: one figure per fold assignment, their mean and range; --min-f1
    judges the mean."""
    corpus = str(shared / "corpus" / "dev2.jsonl")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monitor", "eval", corpus, "--folds", "2", *args],
                              capture_output=True, text=True)

    proc = run("--json", "--seeds", "2", "--min-f1", "0.99")
    assert proc.returncode == 1                                   # no mean reaches 0.99
    many = json.loads(proc.stdout)
    spread = many["over_seeds"]["f1"]
    assert spread["min"] < spread["max"]                          # two splits, two figures
    assert spread["mean"] == round((spread["min"] + spread["max"]) / 2, 4)
    assert many["f1"] in (spread["min"], spread["max"])           # the lines printed are the first split's
    bad = subprocess.run([sys.executable, "-m", "monitor", "eval", corpus, "--seeds", "2"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--seeds needs --folds" in bad.stderr
