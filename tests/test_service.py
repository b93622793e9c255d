"""Running as a service: systemd's notify protocol and watchdog, /metrics and /healthz on the HTTP
listener, and the log as JSON with a heartbeat, each against a real daemon (or serve) process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import DOUYIN_ITEM, POSTGRES_ONLY, HTTPServer, Project, Route, free_port, rss, wait_for

# The 2023 item is old news on a first poll; these tests want its alert sent (see test_daemon.py).
DAEMON = '[daemon]\njitter = "1s"\ndeliver_every = "1s"\n[extract]\nalert_window = "36500d"\n'


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return proc.returncode, err


# -- systemd ---------------------------------------------------------------------------------------
def test_under_systemd_the_daemon_says_ready_status_pings_the_watchdog_and_says_stopping(
        sqlite_project: Project, http: HTTPServer) -> None:
    """What systemd's Type=notify and WatchdogSec= see, through a real notify socket; the same run
    writes its log as JSON lines with a heartbeat every second."""
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "1h"}],
                                extra=DAEMON + '[log]\nformat = "json"\nheartbeat = "1s"\n')
    name = f"pm-test-{uuid.uuid4().hex[:12]}"    # an abstract socket name, as systemd uses
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.2)
    sqlite_project.env.update({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000"})
    messages: list[str] = []

    def receive() -> None:
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass

    proc = sqlite_project.popen("run")
    try:
        def seen(pred: Any, times: int = 1) -> bool:
            receive()
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "daemon exited")
            return sum(1 for m in messages if pred(m)) >= times

        wait_for(lambda: seen(lambda m: m.startswith("READY=1")), timeout=60)
        # Counts after the poll: one change found (the heartbeat updates STATUS every second here).
        wait_for(lambda: seen(lambda m: "STATUS=" in m and "1 changes found" in m), timeout=60)
        wait_for(lambda: seen(lambda m: m == "WATCHDOG=1", times=3), timeout=30)
        status, err = _stop(proc)
        receive()
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert status == 0, err
    ready = next(m for m in messages if m.startswith("READY=1"))
    assert re.search(r"STATUS=1 sources, 0 failing, \d+ deliveries pending, 0 dead", ready), ready
    assert any(m.startswith("STOPPING=1") for m in messages), messages
    assert messages.index(ready) < next(i for i, m in enumerate(messages) if m.startswith("STOPPING=1"))

    # The log: every line one JSON object; the lines about the source say which.
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    polled = next(x for x in lines if "polled: 1 items, 1 new" in x["message"])
    assert polled["source"] == "news" and polled["level"] == "INFO"
    detected = next(x for x in lines if "detected: douyin ban pinduoduo" in x["message"])
    assert detected["source"] == "news" and detected["change_id"] == 1
    beats = [x["message"] for x in lines if x["message"].startswith("heartbeat: ")]
    assert beats, "no heartbeat line"
    assert any("polled 1 of 1 sources (1 polls, 0 failed), 1 changes found" in b for b in beats), beats


def test_watchdog_pid_of_another_process_means_no_watchdog_here() -> None:
    from monitor.sdnotify import Notifier

    assert Notifier({}).enabled is False and Notifier({}).send("READY=1") is False
    mine = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_seconds == 2.0 and mine.address == "\0x"
    inherited = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert inherited.watchdog_seconds is None


def test_log_settings_are_checked_with_clear_errors(tmp_path: Path) -> None:
    from monitor.config import ConfigError, load

    path = tmp_path / "monitor.toml"
    path.write_text('[log]\nformat = "xml"\nheartbeat = "soon"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "log.format: Input should be 'text' or 'json'" in str(err.value)
    assert "log.heartbeat: 'soon' is not a duration" in str(err.value) and '"off"' in str(err.value)
    path.write_text('[log]\nheartbeat = "off"\n', encoding="utf-8")
    assert load(path).settings.log.heartbeat.total_seconds() == 0


# -- /metrics and /healthz -------------------------------------------------------------------------
def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_metrics_count_polls_changes_and_deliveries_and_healthz_fails_when_the_database_goes(
        sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]), etag='"v1"')
    port = free_port()
    hook = f"json://127.0.0.1:{http.server.server_address[1]}/hook"
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "1h"}],
                                [{"name": "hook", "url": hook}],
                                extra=DAEMON + f'[http]\nlisten = "127.0.0.1:{port}"\n[log]\nheartbeat = "off"\n')
    proc = sqlite_project.popen("run")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        def get(path: str) -> httpx.Response | None:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "daemon exited")
            try:
                return client.get(path)
            except httpx.TransportError:
                return None

        wait_for(lambda: len(http.posts.get("/hook", [])) == 1, timeout=60)

        def delivered() -> str | None:
            r = get("/metrics")
            ok = r is not None and _sample(r.text, "policy_monitor_deliveries_total", notifier="hook",
                                           kind="alert", status="sent") == 1
            return r.text if ok and r is not None else None

        text = wait_for(delivered, timeout=30)
        assert _sample(text, "policy_monitor_polls_total", source="news", outcome="ok") == 1
        assert _sample(text, "policy_monitor_polls_total", source="news", outcome="failed") == 0
        assert _sample(text, "policy_monitor_entries_total", source="news") == 1
        assert _sample(text, "policy_monitor_changes_total", source="news") == 1
        assert _sample(text, "policy_monitor_poll_duration_seconds_count") == 1
        assert _sample(text, "policy_monitor_extraction_seconds_count") == 1
        assert _sample(text, "policy_monitor_outbox_pending") == 0
        assert _sample(text, "policy_monitor_outbox_dead") == 0
        assert _sample(text, "policy_monitor_sources_failing") == 0
        assert _sample(text, "policy_monitor_database_up") == 1
        age = _sample(text, "policy_monitor_source_last_success_age_seconds", source="news")
        assert age is not None and age >= 0

        healthy = get("/healthz")
        assert healthy is not None and healthy.status_code == 200, healthy and healthy.text
        assert healthy.json() == {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}}

        # The database file goes away under the running daemon: unhealthy, and it says why.
        db = Path(sqlite_project.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        sick = get("/healthz")
        assert sick is not None and sick.status_code == 503
        body = sick.json()
        assert body["status"] == "unavailable" and body["checks"]["scheduler"] == "ok"
        assert body["reason"].startswith("database: OperationalError: unable to open database file"), body
    finally:
        client.close()
        status, err = _stop(proc)
    assert status == 0, err


def _serve(project: Project) -> tuple[subprocess.Popen[str], httpx.Client, httpx.Response]:
    """``policy-monitor serve`` on a free port, once its /healthz answers: the process, a client, and
    that first answer."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "serve", "--listen", f"127.0.0.1:{port}",
                             "--config", str(project.config)], cwd=project.dir, env=project.environ(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def health() -> httpx.Response | None:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read() if proc.stderr else "serve exited")
        try:
            return client.get("/healthz")
        except httpx.TransportError:
            return None

    try:
        return proc, client, wait_for(health, timeout=60)
    except BaseException:
        client.close()
        _stop(proc)
        raise


def test_serve_checks_the_database_only_and_says_so(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}], extra=DAEMON)
    sqlite_project.run("once", check=0)
    proc, client, r = _serve(sqlite_project)
    try:
        assert r.status_code == 200
        assert r.json()["checks"] == {"database": "ok",
                                      "scheduler": "not checked: policy-monitor serve runs no scheduler"}
        text = client.get("/metrics").text
        # Nothing polled by this process, but the database's figures are there.
        assert _sample(text, "policy_monitor_polls_total", source="news", outcome="ok") == 0
        assert _sample(text, "policy_monitor_sources_failing") == 0
        assert _sample(text, "policy_monitor_source_last_success_age_seconds", source="news") is not None
    finally:
        client.close()
        status, err = _stop(proc)
    assert status == 0, err


@POSTGRES_ONLY
def test_healthz_on_postgresql_fails_once_the_database_is_dropped(project: Project, http: HTTPServer) -> None:
    """PostgreSQL is asked through the pool (SQLite is opened afresh): a dropped database is noticed."""
    import psycopg

    from conftest import PG_ADMIN

    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}], extra=DAEMON)
    project.run("once", check=0)
    proc, client, r = _serve(project)
    try:
        assert r.status_code == 200
        assert _sample(client.get("/metrics").text, "policy_monitor_database_up") == 1
        name = project.database_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        sick = client.get("/healthz")
        assert sick.status_code == 503
        assert sick.json()["reason"].startswith("database: OperationalError"), sick.json()
        assert "password" not in sick.text and "postgres@" not in sick.text
        assert _sample(client.get("/metrics").text, "policy_monitor_database_up") == 0
    finally:
        client.close()
        status, err = _stop(proc)
    assert status == 0, err


def test_a_delivery_answered_after_its_time_limit_is_counted_as_sent(sqlite_project: Project, http: HTTPServer) -> None:
    """A mail server that answers after delivery.timeout: the attempt ends "unknown", and when the
    answer comes while the process runs, the counters say "sent" too, as the outbox does."""
    from conftest import SlowSMTPServer, open_app
    from monitor.pipeline import poll

    smtp = SlowSMTPServer(delay=2)
    smtp.start()
    try:
        http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
        sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                    [{"name": "mail", "url": smtp.url, "reminders": False}], extra=DAEMON)
        text = sqlite_project.config.read_text().replace("[delivery]\n", '[delivery]\ntimeout = "1s"\n')
        sqlite_project.config.write_text(text)
        app = open_app(sqlite_project)
        metrics = app.metrics
        try:
            assert poll(app, app.config.settings.sources[0]).changes == 1
            app.dispatcher.deliver_due()

            def count(status: str) -> float | None:
                return _sample(metrics.exposition().decode(), "policy_monitor_deliveries_total",
                               notifier="mail", kind="alert", status=status)

            assert count("unknown") == 1 and not count("sent")
            wait_for(lambda: count("sent") == 1, timeout=20)
            assert len(smtp.messages) == 1
        finally:
            app.close()
    finally:
        smtp.stop()


def test_under_json_logs_the_reason_a_command_stops_is_a_json_line_too(tmp_path: Path) -> None:
    """A log shipper parses every line of the daemon's stderr: the last one, saying why it stopped,
    included."""
    config = tmp_path / "monitor.toml"
    config.write_text('[log]\nformat = "json"\n[[sources]]\nname = "a"\nurl = "http://127.0.0.1:9/a.xml"\n',
                      encoding="utf-8")
    env = {**os.environ, "MONITOR_DATABASE_URL": "postgresql+psycopg://postgres:pw@127.0.0.1:9/none"}
    proc = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    [line] = [json.loads(x) for x in proc.stderr.splitlines() if x.strip()]
    assert line["level"] == "ERROR" and line["exit_status"] == 1
    assert line["message"].startswith("cannot migrate postgresql+psycopg://***@127.0.0.1:9/none")
    assert "pw" not in proc.stderr

    config.write_text(config.read_text().replace('format = "json"', 'format = "text"'), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("error: cannot migrate postgresql+psycopg://***@")
