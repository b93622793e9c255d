"""The deployment files agree with the code: images cannot be built here, so the Dockerfile, the
compose file, the container's config, env.example and the systemd unit are read and checked against
what the program really reads (config keys, environment variables, port, paths, health endpoint)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, HTTPServer, Route

DEPLOY = ROOT / "deploy"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        instruction, _, args = (pending + line).strip().partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    return out


def instruction(name: str) -> list[str]:
    return [args for inst, args in dockerfile() if inst == name]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"{args} is not the exec form"
    return [str(v) for v in value]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_example() -> dict[str, str]:
    """The names set in env.example (commented-out lines are the optional ones, left out)."""
    out = {}
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def container_config_path() -> str:
    """Where the image's CMD looks for its config."""
    [cmd] = instruction("CMD")
    argv = exec_form(cmd)
    return argv[argv.index("--config") + 1]


def test_the_image_runs_the_daemon_as_a_user_on_the_port_and_volume_its_config_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert instruction("FROM") == ["python:3.12-slim"]
    [user] = instruction("USER")
    assert user not in ("root", "0")
    assert any(user in args and "useradd" in args for args in instruction("RUN")), "the user is not made"
    assert any("pip install" in args and "[postgres]" in args for args in instruction("RUN"))
    [cmd] = instruction("CMD")
    assert exec_form(cmd)[:2] == ["policy-monitor", "run"]

    # The config CMD names is the one COPY puts there (WORKDIR + destination) ...
    [workdir] = instruction("WORKDIR")
    copies = {}
    for args in instruction("COPY"):
        *sources, dest = args.split()
        for src in sources:
            into_folder = dest.endswith("/") or len(sources) > 1
            copies[str(Path(workdir) / dest / Path(src).name if into_folder else Path(workdir) / dest)] = src
    path = container_config_path()
    assert copies.get(path) == "deploy/monitor.toml", copies
    for src in copies.values():
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the checkout"

    # ... and it loads, with the environment env.example describes.
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    from monitor.config import load, parse_listen

    cfg = load(DEPLOY / "monitor.toml")
    host, port = parse_listen(cfg.settings.http.listen or "")
    assert host == "0.0.0.0"
    assert instruction("EXPOSE") == [str(port)]
    [volume] = instruction("VOLUME")
    assert cfg.database_url == f"sqlite:///{volume}/monitor.db"

    [health] = instruction("HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/healthz" in health


def test_the_healthcheck_command_fails_on_503_and_passes_on_200(http: HTTPServer) -> None:
    """The HEALTHCHECK's own command, run against a real server answering as /healthz does."""
    [health] = instruction("HEALTHCHECK")
    argv = exec_form(health.partition("CMD")[2].strip())
    assert argv[0] == "python"   # slim has no curl
    port = http.server.server_address[1]
    argv = [sys.executable, *argv[1:]]
    argv = [a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in argv]
    http.routes["/healthz"] = Route(b'{"status":"ok"}', content_type="application/json")
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    http.routes["/healthz"] = Route(b'{"status":"unavailable"}', status=503, content_type="application/json")
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode != 0


def test_compose_runs_the_same_command_with_postgresql_and_the_secrets_env_example_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    app, pg = services["policy-monitor"], services["postgres"]
    [cmd] = instruction("CMD")
    assert app["command"] == exec_form(cmd)
    assert app["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert app["env_file"] == ".env" and pg["env_file"] == ".env"
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert pg["image"] == "postgres:16" and app["restart"] and pg["restart"]

    # Port and volume: the ones the image exposes and declares; the volumes are named ones.
    [volume] = instruction("VOLUME")
    assert f"data:{volume}" in app["volumes"]
    assert any(v.startswith("pgdata:") for v in pg["volumes"])
    assert set(compose()["volumes"]) == {"data", "pgdata"}
    [expose] = instruction("EXPOSE")
    assert any(p.rsplit(":", 1)[-1] == expose for p in app["ports"])

    # Every ${VAR} the compose file and the container's config use is in env.example, and env.example
    # sets nothing else; the variables compose sets itself are ones the program reads.
    wanted = referenced((DEPLOY / "compose.yaml").read_text()) | referenced((DEPLOY / "monitor.toml").read_text())
    assert set(env_example()) == wanted
    config_source = (ROOT / "monitor" / "config.py").read_text(encoding="utf-8")
    for name in app["environment"]:
        assert f'"{name}"' in config_source, f"{name}: the program does not read it"
    commented = re.findall(r"^#\s*([A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M)
    for name in commented:   # the optional ones
        assert f'"{name}"' in config_source, f"env.example: {name} is not read by the program"

    # The database URL compose gives the daemon is PostgreSQL on the postgres service, with its user
    # and database, and the config takes it over storage.url.
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    url = app["environment"]["MONITOR_DATABASE_URL"].replace("${POSTGRES_PASSWORD}", env_example()["POSTGRES_PASSWORD"])
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    from sqlalchemy.engine import make_url

    from monitor.config import load

    parsed = make_url(load(DEPLOY / "monitor.toml").database_url)
    assert parsed.get_backend_name() == "postgresql" and parsed.host == "postgres"
    assert parsed.username == pg["environment"]["POSTGRES_USER"]
    assert parsed.database == pg["environment"]["POSTGRES_DB"]
    assert f"-U {parsed.username} -d {parsed.database}" in " ".join(pg["healthcheck"]["test"])


def test_the_systemd_unit_is_type_notify_hardened_and_runs_the_daemon() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "policy-monitor.service", encoding="utf-8")
    svc = unit["Service"]
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert re.fullmatch(r"\d+(s|min)", svc["WatchdogSec"])
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "StateDirectory": "policy-monitor"}.items():
        assert svc[key] == value, key
    assert svc["User"] not in ("root", "0")
    state = f"/var/lib/{svc['StateDirectory']}"
    assert svc["WorkingDirectory"] == state and state in svc["ReadWritePaths"].split()
    argv = shlex.split(svc["ExecStart"])
    assert argv[0].endswith("/bin/policy-monitor") and argv[1] == "run" and "--config" in argv
