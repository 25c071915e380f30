"""A task for the check/beat/worker property test: takes any arguments, succeeds at once."""
from __future__ import annotations

from tasks.application import app


@app.task(name="tests.contract.any_args")
def any_args(feed_id: object = None, region: object = None, *args: object, **kwargs: object) -> str:
    return "ok"
