"""How a run ended, as a test reads it from Celery's result backend."""
from __future__ import annotations


def run_state(result) -> str:
    """Celery's state, except a run that never executed: the guard ends it REVOKED with the reason
    "<status>: <why>" (``tasks.guard.task``), read back here as its status in upper case
    ("SKIPPED_OVERLAP", "DEAD_LETTERED"...), so a test says which skip it expects."""
    state = result.state
    if state != "REVOKED":
        return state
    status = str(result.result).split(":", 1)[0]
    return status.upper() if status.startswith(("skipped_", "expired", "dead_lettered")) else state
