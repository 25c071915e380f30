"""The one settings table (tasks/cli/settings.py) is complete: every variable the code reads is in
it, nothing in it is read by nobody, and .env.example is what `beatkeeper settings` prints."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from click.testing import CliRunner

from tasks.cli import main
from tasks.cli.settings import SETTINGS, env_example

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAME = re.compile(r"(BEATKEEPER_[A-Z0-9_]*[A-Z0-9]|REDIS_URL|DATABASE_URL|CELERY_RESULT_BACKEND|CELERY_BROKER_URL"
                          r"|FLOWER_[A-Z_]*[A-Z]|GTFS_[A-Z_]*_URL|GIFT_[A-Z_]*[A-Z])")
#: Read by compose alone: it builds REDIS_URL and DATABASE_URL from the passwords, publishes on the ports.
COMPOSE_ONLY = {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_HOST_PORT", "MONITOR_HOST_PORT"}


def source_files() -> list[Path]:
    files = [ROOT / "celeryconfig.py"]
    for package in ("tasks", "monitoring", "schedules", "examples"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def names_read_by_the_code() -> dict[str, str]:
    """Every string constant that is a whole setting name -> the first file naming it."""
    found: dict[str, str] = {}
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING_NAME.fullmatch(node.value):
                found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def test_every_setting_the_code_reads_is_in_the_table():
    read = names_read_by_the_code()
    assert len(read) > 30  # the scan sees the code's settings (a scan that finds nothing proves nothing)
    missing = {name: where for name, where in read.items() if name not in SETTINGS}
    assert not missing, f"settings read by the code but missing from tasks/cli/settings.py: {missing}"


def test_every_setting_in_the_table_is_read_somewhere():
    read = set(names_read_by_the_code())
    compose = (ROOT / "docker-compose.yml").read_text()
    unread = [name for name in SETTINGS if name not in read and not (name in COMPOSE_ONLY and name in compose)]
    assert not unread, f"in the settings table but read by nothing: {unread}"


def test_env_example_is_generated_from_the_table_and_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    assert text == env_example(), "regenerate it: .venv/bin/beatkeeper settings > .env.example"
    listed = {m.group(1) for m in re.finditer(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M)}
    assert listed == set(SETTINGS)
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0 and result.output == text


def test_only_the_secrets_are_uncommented_and_empty():
    uncommented = [line for line in env_example().splitlines() if line and not line.startswith("#")]
    assert uncommented == ["REDIS_PASSWORD=", "POSTGRES_PASSWORD=", "FLOWER_BASIC_AUTH="]
