"""A real Celery event receiver, as Flower runs one: ``app.events.Receiver`` on the broker feeding
``celery.events.state.State``. Used as a context manager; it is listening once entered."""
from __future__ import annotations

import threading

from tests.servers import wait_until

_PROBE_HOST = "events-probe@test"


class TaskEvents:
    def __init__(self, app):
        self.app = app
        self.state = app.events.State()
        self._connection = app.connection_for_read()
        self.receiver = app.events.Receiver(self._connection, handlers={"*": self.state.event})
        self._thread = threading.Thread(target=self._capture, name="test-event-receiver", daemon=True)

    def _capture(self) -> None:
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> "TaskEvents":
        self._thread.start()

        def heard_itself() -> bool:  # events are fan-out: only those sent once it listens arrive
            with self.app.events.default_dispatcher(hostname=_PROBE_HOST) as dispatcher:
                dispatcher.send("worker-online")
            return _PROBE_HOST in self.state.workers

        wait_until(heard_itself, timeout_s=20, interval_s=0.2, what="the event receiver to listen")
        return self

    def __exit__(self, *exc) -> None:
        self.receiver.should_stop = True
        self._thread.join(timeout=10)
        self._connection.release()

    def task(self, task_id: str):
        return self.state.tasks.get(task_id)
