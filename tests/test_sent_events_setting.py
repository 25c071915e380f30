"""``BEATKEEPER_TASK_SENT_EVENTS``: celery-exporter's sent/queue-wait metrics need task-sent events."""
from __future__ import annotations

import importlib

import pytest

import celeryconfig


@pytest.fixture
def reload_config(monkeypatch):
    def load(value: str | None):
        if value is None:
            monkeypatch.delenv("BEATKEEPER_TASK_SENT_EVENTS", raising=False)
        else:
            monkeypatch.setenv("BEATKEEPER_TASK_SENT_EVENTS", value)
        return importlib.reload(celeryconfig)
    yield load
    monkeypatch.undo()
    importlib.reload(celeryconfig)


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("", False), ("0", False), ("off", False),
                                                 ("1", True), ("true", True), ("YES", True)])
def test_the_setting_turns_task_sent_events_on_and_off(reload_config, value, expected):
    assert reload_config(value).task_send_sent_event is expected


def test_a_value_that_is_no_flag_is_refused_naming_the_variable(reload_config):
    with pytest.raises(ValueError, match=r"^BEATKEEPER_TASK_SENT_EVENTS='maybe': expected 1/true/yes/on"):
        reload_config("maybe")
