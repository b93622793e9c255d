"""The daemon as a process: it polls on its own, stops cleanly on SIGTERM, and after a SIGKILL the
next start delivers what was stored but not yet delivered, exactly once."""

from __future__ import annotations

import signal
from typing import Any
import time

from conftest import DOUYIN_ITEM, POSTGRES_ONLY, HTTPServer, Project, Route, SMTPServer, rss, wait_for

# The daemon runs on the real clock, and the 2023 item would be old news on a source's first poll
# (recorded, not alerted): these tests are about delivery, so every change counts as news here.
DAEMON = '[daemon]\njitter = "1s"\n[extract]\nalert_window = "36500d"\n'


def _changes(project: Project) -> list:  # type: ignore[type-arg]
    proc = project.run("changes", "--format", "json")
    import json

    return json.loads(proc.stdout) if proc.returncode == 0 else []


def test_daemon_polls_delivers_and_stops_on_sigterm(project: Project, http: HTTPServer, smtp: SMTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "1h"}],
                         [{"name": "ops-mail", "url": smtp.url}], extra=DAEMON)
    proc = project.popen("run")
    try:
        wait_for(lambda: len(smtp.messages) == 1, timeout=60, proc=proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "source=news polled: 1 items, 1 new" in err
    assert "change #1 detected: douyin ban pinduoduo" in err
    assert "delivered alert" in err and "notifier=ops-mail" in err
    assert "daemon stopped" in err
    assert len(smtp.messages) == 1


def test_killed_before_delivery_the_next_start_delivers_once(project: Project, http: HTTPServer) -> None:
    smtp = SMTPServer()  # down while the daemon first runs
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "1h"}],
                         [{"name": "ops-mail", "url": smtp.url}], extra=DAEMON)
    proc = project.popen("run")
    try:
        # Stored and owed, not delivered: the change exists and its delivery has failed once.
        wait_for(lambda: any(d["attempts"] >= 1 for d in _deliveries(project)), timeout=60, proc=proc)
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(_changes(project)) == 1
    smtp.start()
    try:
        later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
        project.run("once", now=later, check=0)
        project.run("once", now=later, check=0)
        assert len(smtp.messages) == 1
        assert "拼多多" in smtp.texts()[0]
        assert len(_changes(project)) == 1
    finally:
        smtp.stop()


def _deliveries(project: Project) -> list:  # type: ignore[type-arg]
    import json

    proc = project.run("deliveries", "--format", "json")
    return json.loads(proc.stdout) if proc.returncode == 0 else []


def test_two_daemons_on_one_database_poll_and_alert_once(project: Project, http: HTTPServer,
                                                         smtp: SMTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "1h"}],
                         [{"name": "ops-mail", "url": smtp.url}], extra=DAEMON)
    project.run("db", "upgrade", check=0)
    daemons = [project.popen("run"), project.popen("run")]
    try:
        wait_for(lambda: len(smtp.messages) >= 1, timeout=60)
        time.sleep(3)  # give the second daemon every chance to poll or deliver again
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.communicate(timeout=30)
    finally:
        for d in daemons:
            if d.poll() is None:
                d.kill()
    assert [d.returncode for d in daemons] == [0, 0]
    assert http.hits["/feed.xml"] == 1
    assert len(smtp.messages) == 1


# -- issue 13 --------------------------------------------------------------------------------------
def test_sources_dripping_headers_do_not_stop_good_polls_or_deliveries(sqlite_project: Project, http: HTTPServer,
                                                                       smtp: SMTPServer) -> None:
    """More stuck sources than fetch workers: each is cut off at fetch.timeout, the good source is
    polled and its alert delivered, and SIGTERM ends the daemon."""
    from conftest import drip_headers

    http.routes["/drip.xml"] = Route(handler=drip_headers)
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    drips = [{"name": f"drip-{i}", "url": http.url("/drip.xml"), "interval": "1h"} for i in range(5)]
    sqlite_project.write_config(drips + [{"name": "good", "url": http.url("/feed.xml"), "interval": "1h"}],
                                [{"name": "ops-mail", "url": smtp.url}], extra=DAEMON)
    text = sqlite_project.config.read_text().replace("[fetch]\n", "[fetch]\nworkers = 2\n")
    sqlite_project.config.write_text(text)
    proc = sqlite_project.popen("run")
    try:
        wait_for(lambda: len(smtp.messages) == 1, timeout=90, proc=proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "source=drip-0 failed (1 in a row): timed out after 3s" in err
    status = {s["name"]: s["status"] for s in sqlite_project.json("sources")}
    assert status["good"] == "ok"


def test_sigterm_cuts_off_stuck_fetches_after_the_grace_and_a_second_signal_exits_now(
        sqlite_project: Project, http: HTTPServer) -> None:
    from conftest import drip_headers

    http.routes["/drip.xml"] = Route(handler=lambda h: drip_headers(h, seconds=600))
    sqlite_project.write_config([{"name": f"drip-{i}", "url": http.url("/drip.xml")} for i in range(2)],
                                extra='[daemon]\nshutdown_grace = "1s"\n')
    text = sqlite_project.config.read_text().replace('timeout = "3s"', 'timeout = "600s"')
    sqlite_project.config.write_text(text)
    proc = sqlite_project.popen("run")
    try:
        wait_for(lambda: http.hits.get("/drip.xml", 0) >= 2, timeout=60, proc=proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)   # the fetches would run ten minutes
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "taking no new work" in err and "cutting off 2 unfinished polls" in err and "daemon stopped" in err
    assert "source=drip-0 stopped before it finished" in err
    [s0, s1] = sqlite_project.json("sources")
    assert s0["status"] == s1["status"] == "never"                 # not the sources' failure

    sqlite_project.config.write_text(sqlite_project.config.read_text().replace('shutdown_grace = "1s"',
                                                                               'shutdown_grace = "600s"'))
    proc = sqlite_project.popen("run")
    try:
        wait_for(lambda: http.hits.get("/drip.xml", 0) >= 4, timeout=60, proc=proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "received SIGINT again: exiting now" in err


@POSTGRES_ONLY  # where several daemons share a database (the claim itself is tested on both databases)
def test_two_daemons_with_a_short_interval_never_poll_one_source_together(project: Project,
                                                                         http: HTTPServer) -> None:
    """Interval 8 s, the default 30 s jitter: the old window claim let both daemons poll each time."""
    import threading

    active = {"now": 0, "max": 0}
    lock = threading.Lock()
    body = rss([DOUYIN_ITEM])

    def serve(h: Any) -> None:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.5)
        with lock:
            active["now"] -= 1
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    http.routes["/feed.xml"] = Route(handler=serve)
    project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "8s"}])
    project.run("db", "upgrade", check=0)
    daemons = [project.popen("run"), project.popen("run")]
    started = time.monotonic()
    try:
        time.sleep(12)
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        errs = [d.communicate(timeout=60)[1] for d in daemons]
    finally:
        for d in daemons:
            if d.poll() is None:
                d.kill()
    elapsed = time.monotonic() - started
    assert [d.returncode for d in daemons] == [0, 0]
    assert active["max"] == 1
    assert http.hits["/feed.xml"] <= elapsed / 8 + 1, http.hits   # at most once an interval, not once a daemon
    for err in errs:
        assert "Traceback" not in err and "UniqueViolation" not in err and "IntegrityError" not in err
    assert sum(err.count("source=news polled") for err in errs) == http.hits["/feed.xml"]
