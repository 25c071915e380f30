"""Tasks the bad-config table names, registered for `beatkeeper check` subprocesses
(``BEATKEEPER_TASK_MODULES=tests.schedules.cli_tasks``)."""
from tasks.application import app


@app.task(name="etl.poll")
def poll() -> None:
    """Stands in for a user's polling task."""


@app.task(name="etl.report")
def report() -> None:
    """Stands in for a user's reporting task."""
