"""The daemon as a process: it polls on its own, stops cleanly on SIGTERM, and after a SIGKILL the
next start delivers what was stored but not yet delivered, exactly once."""

from __future__ import annotations

import signal
import time

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, SMTPServer, rss, wait_for

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
        wait_for(lambda: len(smtp.messages) == 1, timeout=60)
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
        wait_for(lambda: any(d["attempts"] >= 1 for d in _deliveries(project)), timeout=60)
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
