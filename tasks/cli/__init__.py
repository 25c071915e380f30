"""The ``beatkeeper`` command line (console script ``beatkeeper = tasks.cli:main``).

Each command is one module of this package defining ``command`` (a click command);
adding a command is adding its module and one line to :data:`COMMANDS`.

Exit codes: 0 success; 1 the schedule has problems (one line each, on stderr); 2 a usage
error, an unreadable or unparseable file, a bad setting, or an unexpected failure; 3 Redis
or the history database cannot be reached (one line naming the setting and its target). No
traceback is ever printed (set ``BEATKEEPER_DEBUG=1`` to get one for an unexpected failure).
"""
from __future__ import annotations

import importlib
import os

import click

from schedules.errors import BeatkeeperScheduleError, ScheduleConfigError
from tasks.infra_errors import infra_error_line, is_bad_setting

#: Command name -> the module defining it (``command``, or ``commands`` for several).
#: Modules load only when their command runs: a fast start, and one broken command
#: cannot take the others down.
COMMANDS = {
    "check": "tasks.cli.check",
    "plan": "tasks.cli.plan",
    "history": "tasks.cli.history",
    "pause": "tasks.cli.pause",
    "resume": "tasks.cli.pause",
    "db": "tasks.cli.db",
    "monitor": "tasks.cli.monitor",
    "status": "tasks.cli.status",
    "pipeline": "tasks.cli.pipeline",
    "flower": "tasks.cli.flower",
    "trigger": "tasks.cli.trigger",
    "dead-letters": "tasks.cli.dead_letters",
    "import": "tasks.cli.importer",
    "health": "tasks.cli.health",
    "settings": "tasks.cli.settings",
    "entries": "tasks.cli.entries",
}

EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class BeatkeeperGroup(click.Group):
    """A click group that loads commands lazily and turns every failure into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name])
        found = getattr(module, "commands", None) or (module.command,)
        return next((c for c in found if c.name == name), None)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click prints these itself, with its own exit codes (usage errors: 2)
        except ScheduleConfigError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            click.echo(f"{len(exc.problems)} problem(s) found", err=True)
            ctx.exit(EXIT_PROBLEMS)
        except BeatkeeperScheduleError as exc:  # a file, a setting: fix the input, not the schedule
            click.echo(f"beatkeeper: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except Exception as exc:  # the promise is one line, never a traceback
            if os.environ.get("BEATKEEPER_DEBUG"):
                raise
            line = infra_error_line(exc)
            if line is not None:
                click.echo(f"beatkeeper: {line}", err=True)
                ctx.exit(EXIT_USAGE if is_bad_setting(exc) else EXIT_UNREACHABLE)
            message = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"beatkeeper: internal error: {type(exc).__name__}: {message} "
                       f"(BEATKEEPER_DEBUG=1 shows the traceback)", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=BeatkeeperGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="beatkeeper", prog_name="beatkeeper", message="%(prog)s %(version)s")
def main() -> None:
    """beatkeeper: validated, DST-correct Celery beat schedules."""
