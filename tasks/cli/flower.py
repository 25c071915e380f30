"""``beatkeeper flower``: start Flower (Celery's web monitor) only with credentials.

Flower serves every task's arguments and results and can revoke tasks, and it starts
without authentication when ``FLOWER_BASIC_AUTH`` is unset or accepts an empty password.
This launcher refuses both with one line (exit 2), listens on 127.0.0.1 unless
``FLOWER_ADDRESS`` says otherwise, waits for Redis like beat does, then becomes
``celery -A tasks flower`` (exec: same pid, Flower reads its other ``FLOWER_*`` settings).
The Procfile, docker-compose.yml and the local runner all start Flower through it.
"""
from __future__ import annotations

import logging
import os
import sys

import click

from monitoring.basic_auth import credentials_problem
from tasks import app
from tasks.cli import EXIT_USAGE
from tasks.infra.errors import install_on, wait_for_broker

log = logging.getLogger("beatkeeper.flower")

DEFAULT_ADDRESS = "127.0.0.1"


def flower_argv() -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "tasks", "flower"]


@click.command("flower")
def command() -> None:
    """Start Flower behind FLOWER_BASIC_AUTH (user:password, both non-empty), on 127.0.0.1 by default."""
    problem = credentials_problem("FLOWER_BASIC_AUTH", os.environ.get("FLOWER_BASIC_AUTH"))
    if problem is not None:
        click.echo(f"beatkeeper: {problem}", err=True)
        raise SystemExit(EXIT_USAGE)
    os.environ.setdefault("FLOWER_ADDRESS", DEFAULT_ADDRESS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_on(logging.getLogger())  # an unreachable Redis or database is one line, not a traceback
    wait_for_broker(app, who="flower", log=log)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, flower_argv())
