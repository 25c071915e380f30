"""The Celery app. ``celery -A tasks ...`` finds it as ``tasks.app``.

Your own task modules live in ``tasks/user/`` (found without any variable, see ``tasks.user``);
modules elsewhere join with ``BEATKEEPER_TASK_MODULES=myapp.jobs,myapp.sweeps``:
workers, beat and the CLI then all register them.
"""
from __future__ import annotations

import os
import sys

from celery import Celery, signals
from celery.loaders.app import AppLoader

from monitoring.namespace import deployment_namespace
from schedules.errors import SettingsError
from schedules.examples import example_task_module, selected_example
from tasks.infra.errors import TaskModuleError, check_redis_url, install_on, named_task_modules, redis_url
from tasks.infra.redis_sentinel import check_sentinel_settings
from tasks.infra.redis_tls import check_tls_settings
from tasks.wiring import install
from tasks.beat.selfchecks import eviction_check_mode

#: Modules whose tasks every worker, beat and the CLI register.
BUILTIN_TASK_MODULES = ["tasks.builtin"]


def task_modules(environ=os.environ) -> list[str]:
    from tasks.user import user_task_modules

    extra = named_task_modules(environ)
    try:  # BEATKEEPER_EXAMPLE: an example's tasks only when it is selected
        example = selected_example(environ)
    except SettingsError:
        example = None  # an unknown name: loading the schedule refuses it in one line
    example_modules = [example_task_module(example)] if example else []
    return BUILTIN_TASK_MODULES + example_modules + [m for m in user_task_modules() if m not in extra] + extra


class BeatkeeperLoader(AppLoader):
    """Celery's loader, except that a bad REDIS_URL or a user task module that cannot be
    imported is one line: a SettingsError for the CLI (``beatkeeper check`` refuses it first),
    and a one-line exit (2) for a worker or beat starting up."""

    def import_default_modules(self):
        check_redis_url(redis_url(os.environ))
        check_tls_settings(os.environ)
        check_sentinel_settings(os.environ)
        eviction_check_mode(os.environ)  # a bad value: one line here, not at beat's self-check
        deployment_namespace(os.environ)  # the keys were prefixed at import; a bad name stops here
        return super().import_default_modules()

    def import_task_module(self, module):
        if module in BUILTIN_TASK_MODULES:
            return super().import_task_module(module)
        try:
            return super().import_task_module(module)
        except Exception as exc:  # the user's module: its own error is the news, not our traceback
            raise TaskModuleError(module, exc) from exc

    def init_worker(self):
        try:
            super().init_worker()
        except SettingsError as exc:  # TaskModuleError, RedisUrlError
            print(f"beatkeeper: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _one_line_infra_errors(logger=None, **_) -> None:
    """Beat's and the workers' logs: an unreachable Redis or database is one line, not a traceback."""
    if logger is not None:
        install_on(logger)


# Every task, the platform's and the user's, gets the guarded base (overlap policies, locks,
# middlewares) unless it names another ``base``.
app = Celery("beatkeeper", include=task_modules(), task_cls="tasks.guard:GuardedTask",
             loader="tasks.application:BeatkeeperLoader")  # a name: Celery's Django fixup lowercases it
app.config_from_object("celeryconfig")
install(app)  # app.beatkeeper: the shared objects, built once (tasks.wiring)
