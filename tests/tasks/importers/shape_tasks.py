"""The tasks the imported test schedules name, for `beatkeeper check`
(BEATKEEPER_TASK_MODULES=tests.tasks.importers.shape_tasks)."""
from tasks import app


@app.task(name="shapes.nightly")
def nightly() -> None:
    return None


@app.task(name="shapes.poll")
def poll() -> None:
    return None


@app.task(name="shapes.report")
def report(number: int, letter: str, region: str = "") -> None:
    return None
