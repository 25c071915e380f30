"""docker-compose.yml runs the same commands as the local runner (no Docker engine here)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from tasks.cli.runner import procfile_commands

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_runner_process_is_a_compose_service_with_the_same_command():
    procfile = procfile_commands(ROOT / "Procfile")
    assert set(procfile) <= set(SERVICES), f"missing services: {set(procfile) - set(SERVICES)}"
    for name, command in procfile.items():
        assert shlex.split(SERVICES[name]["command"]) == shlex.split(command), name


def test_python_services_share_one_image_and_take_config_only_from_the_environment():
    python_services = {n: s for n, s in SERVICES.items() if n not in ("redis", "postgres")}
    assert {s["image"] for s in python_services.values()} == {"beatkeeper:latest"}
    for name, service in python_services.items():
        assert service["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert service["environment"]["DATABASE_URL"].startswith("postgresql+psycopg2://beatkeeper:${POSTGRES_")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        if name != "migrate":  # every service starts after the history schema is migrated
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert shlex.split(SERVICES["migrate"]["command"]) == ["beatkeeper", "db", "upgrade"]


def test_redis_has_a_password_append_only_persistence_and_a_healthcheck():
    redis = SERVICES["redis"]
    command = shlex.split(redis["command"])
    assert command[command.index("--requirepass") + 1] == "${REDIS_PASSWORD:?set-REDIS_PASSWORD}"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "ping" in redis["healthcheck"]["test"]


def test_flower_requires_basic_auth_and_no_secret_is_in_the_repo():
    assert SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    text = (ROOT / "docker-compose.yml").read_text()
    # every credential is an ${VARIABLE} reference, never a literal
    assert not re.search(r"^\s*\w*(PASSWORD|AUTH)\w*:\s+(?!\$\{)\S", text, re.MULTILINE)
    assert not (ROOT / ".env").exists()


def test_flower_starts_only_through_the_launcher_that_refuses_empty_credentials():
    from monitoring.basic_auth import credentials_problem

    procfile = procfile_commands(ROOT / "Procfile")
    assert shlex.split(procfile["flower"]) == ["beatkeeper", "flower"]  # never `celery flower` directly
    assert "celery" not in SERVICES["flower"]["command"]
    # compose's ${VAR:?} check passes "admin:"; the launcher refuses it, and .env.example does not suggest it
    assert credentials_problem("FLOWER_BASIC_AUTH", "admin:") is not None
    assert credentials_problem("FLOWER_BASIC_AUTH", "ops:s3cret") is None
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert credentials_problem("FLOWER_BASIC_AUTH", example["FLOWER_BASIC_AUTH"]) is not None  # a copy cannot start it
    assert SERVICES["monitor"]["environment"]["BEATKEEPER_MONITOR_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


def test_web_surfaces_listen_on_every_interface_only_inside_containers_and_publish_on_127_0_0_1():
    for name, port, host_port in (("flower", 5555, "FLOWER_HOST_PORT"), ("monitor", 8736, "MONITOR_HOST_PORT")):
        assert SERVICES[name]["ports"] == [f"127.0.0.1:${{{host_port}:-{port}}}:{port}"], name
    from monitoring.monitor import MonitorSettings

    assert MonitorSettings.from_env({}).host == "127.0.0.1"  # started by hand: this machine only


def test_every_service_reads_the_env_file_as_make_run_does():
    for name, service in SERVICES.items():
        assert service.get("env_file") == [{"path": ".env", "required": False}], name


def test_worker_and_beat_have_healthchecks_of_their_own():
    for name, worker_name in (("worker", "default"), ("worker-singleton", "singleton")):
        assert f"-n {worker_name}@%h" in SERVICES[name]["command"]  # the node `health worker` pings
        assert SERVICES[name]["healthcheck"]["test"] == ["CMD", "beatkeeper", "health", "worker", worker_name]
    assert SERVICES["beat"]["healthcheck"]["test"] == ["CMD", "beatkeeper", "health", "beat"]


def test_the_image_carries_the_users_code_and_never_the_env_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("tasks", "schedules", "monitoring"):  # tasks/user/ and schedules/user.yaml inside them
        assert re.search(rf"^COPY {folder} \./{folder}$", dockerfile, re.MULTILINE), folder
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ".env" in ignored and ".venv" in ignored
    assert not [p for p in ignored if p.startswith(("tasks", "schedules", "monitoring"))]
