"""People's corrections (`policy-monitor label`): applied at once with update messages through a real
notifier, kept across `reextract` and later reports, and exported as corpus lines that `eval` reads.
The withdrawal test runs on PostgreSQL too (its queries are the ones that differ); the others on
SQLite, to keep the suite's time."""

from __future__ import annotations

import json
from datetime import datetime

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, rss
from test_alerts import KS_ITEM, hook, messages

NOW = "2023-04-11T10:00:00+08:00"   # the Douyin rule takes effect 2023-04-15, Kuaishou's 2023-04-20


def _by_platform(project: Project, *extra: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["platform"]: c for c in project.json("changes", *extra)}


def test_a_corrected_date_updates_the_change_its_reminders_and_the_people_told(sqlite_project: Project,
                                                                              http: HTTPServer) -> None:
    project = sqlite_project
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "team", "url": hook(http), "lang": "en"}],
                         extra='[reminders]\noffsets = ["1d"]\nat = "09:00"\n')
    project.run("once", now=NOW, check=0)
    douyin = _by_platform(project)["douyin"]
    assert douyin["effective_date"] == "2023-04-15" and len(messages(http)) == 1

    out = project.run("label", str(douyin["id"]), "--date", "2023-04-18", now=NOW, check=0).stdout
    assert "date: 2023-04-15 -> 2023-04-18" in out and "1 message queued" in out
    project.run("once", now=NOW, check=0)
    update = messages(http)[1]
    assert "corrected the effective date from 2023-04-15 to 2023-04-18" in update
    assert "(2023-04-18)" in update.splitlines()[0]
    douyin = _by_platform(project)["douyin"]
    assert douyin["effective_date"] == "2023-04-18"
    assert douyin["history"][-1]["what"] == "date_corrected"
    reminders = [d for d in project.json("deliveries") if d["kind"] == "reminder"]
    assert sorted(d["status"] for d in reminders) == ["cancelled", "pending"]

    # The reminder goes out the day before the corrected date, not the day before the old one.
    project.run("once", now="2023-04-14T09:30:00+08:00", check=0)
    assert len(messages(http)) == 2
    project.run("once", now="2023-04-17T09:30:00+08:00", check=0)
    assert len(messages(http)) == 3 and "takes effect in 1 day" in messages(http)[2]

    # Re-extraction and a second report with the old date keep the person's date, silently.
    project.run("reextract", now=NOW, check=0)
    second = dict(DOUYIN_ITEM, link="http://other.example.org/douyin.html", title="抖音直播间将下架拼多多链接")
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, second]))
    project.run("once", now="2023-04-17T10:00:00+08:00", check=0)
    [douyin] = project.json("changes")
    assert douyin["effective_date"] == "2023-04-18" and len(douyin["sources"]) == 2
    assert len(messages(http)) == 3


def test_not_a_change_withdraws_it_and_later_reports_of_it_stay_silent(project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "team", "url": hook(http), "lang": "en"}])
    project.run("once", now=NOW, check=0)
    assert len(messages(http)) == 2
    ks = _by_platform(project)["kuaishou"]
    out = project.run("label", str(ks["id"]), "--not-a-change", now=NOW, check=0).stdout
    assert "not a change" in out
    project.run("once", now=NOW, check=0)
    assert "judged this not to be a link-policy change" in messages(http)[2]
    assert set(_by_platform(project)) == {"douyin"}
    assert _by_platform(project, "--status", "withdrawn")["kuaishou"]["history"][-1]["what"] == "withdrawn"
    assert all(d["status"] != "pending" for d in project.json("deliveries") if d["change_id"] == ks["id"])

    # Another article of the same change, and a re-extraction: no new change, no new message.
    again = dict(KS_ITEM, link="http://other.example.org/ks.html", title="快手直播间禁止淘宝链接")
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM, again]))
    project.run("once", now=NOW, check=0)
    project.run("reextract", now=NOW, check=0)
    project.run("once", now=NOW, check=0)
    assert set(_by_platform(project)) == {"douyin"} and len(messages(http)) == 3
    assert len(_by_platform(project, "--status", "withdrawn")["kuaishou"]["sources"]) == 2
    assert project.run("label", str(ks["id"]), "--not-a-change", now=NOW, check=0).stdout.count("already") == 1


def test_a_corrected_platform_reaches_the_notifiers_that_follow_it(sqlite_project: Project, http: HTTPServer) -> None:
    project = sqlite_project
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}], [
        {"name": "all", "url": hook(http, "/all"), "lang": "en"},
        {"name": "weibo-only", "url": hook(http, "/weibo"), "lang": "en", "platforms": ["weibo"]},
        {"name": "douyin-only", "url": hook(http, "/douyin"), "lang": "en", "platforms": ["douyin"]},
    ])
    project.run("once", now=NOW, check=0)
    assert (len(messages(http, "/all")), len(messages(http, "/weibo")), len(messages(http, "/douyin"))) == (1, 0, 1)
    [change] = project.json("changes")
    project.run("label", str(change["id"]), "--platform", "weibo", "--action", "restrict", now=NOW, check=0)
    project.run("once", now=NOW, check=0)
    assert "corrected the action from ban to restricts" in messages(http, "/all")[1]
    assert messages(http, "/weibo")[0].startswith("[link policy] Weibo")     # now selected: its first alert
    assert "corrected" in messages(http, "/douyin")[1]                     # told before: an update
    [change] = project.json("changes")
    assert (change["platform"], change["action"]) == ("weibo", "restrict")
    project.run("reextract", now=NOW, check=0)                             # still weibo / restrict
    assert [(c["platform"], c["action"]) for c in project.json("changes")] == [("weibo", "restrict")]


def test_labels_export_is_a_corpus_that_eval_reads(sqlite_project: Project, http: HTTPServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = sqlite_project
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}])
    project.run("once", now=NOW, check=0)
    by = _by_platform(project)
    project.run("label", str(by["kuaishou"]["id"]), "--not-a-change", now=NOW, check=0)
    project.run("label", str(by["douyin"]["id"]), "--date", "none", now=NOW, check=0)
    listed = project.json("labels", "list")
    assert [(lab["kind"], lab["value"]) for lab in listed] == [("not_a_change", None), ("date", None)]
    exported = tmp_path / "feedback.jsonl"
    project.run("labels", "export", "--output", str(exported), now=NOW, check=0)
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    by_title = {r["title"]: r["label"] for r in rows}
    assert by_title[KS_ITEM["title"]]["is_link_policy_change"] is False
    douyin = by_title[DOUYIN_ITEM["title"]]
    assert douyin["is_link_policy_change"] is True and douyin["platform"] == "douyin"
    assert douyin["effective_date"] is None and douyin["event_key"].startswith("feedback-change-")
    assert all(r["body"] and r["published"] for r in rows)
    proc = project.run("eval", str(exported), check=None)
    assert "items 2" in proc.stdout, proc.stderr


def test_label_errors_are_clear(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_config([])
    proc = project.run("label", "42", "--date", "2023-01-01")
    assert proc.returncode == 2 and "there is no change #42" in proc.stderr
    proc = project.run("label", "42")
    assert proc.returncode == 2 and "say what is wrong" in proc.stderr
    proc = project.run("label", "42", "--date", "soon")
    assert proc.returncode == 2 and "is not a date" in proc.stderr
    proc = project.run("label", "42", "--not-a-change", "--action", "ban")
    assert proc.returncode == 2 and "cannot be combined" in proc.stderr
    assert datetime.now()  # the clock is untouched by these checks
