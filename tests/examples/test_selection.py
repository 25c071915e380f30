"""One mechanism selects an example (BEATKEEPER_EXAMPLE); without it the platform registers
none of their tasks or entries."""
from __future__ import annotations

import pytest

from schedules.errors import SettingsError
from schedules.examples import available_examples, selected_example
from schedules.platform import SCHEDULE, effective_schedule
from tasks.application import BUILTIN_TASK_MODULES, task_modules


def test_the_examples_are_transit_founders_booking_and_gift_exchange():
    assert {"transit", "founders", "booking", "gift_exchange"} <= set(available_examples())


def test_no_example_selected_registers_no_example_task_or_entry():
    assert task_modules({}) == BUILTIN_TASK_MODULES
    assert not any(m.startswith("examples") for m in BUILTIN_TASK_MODULES)
    assert set(effective_schedule({})) == set(SCHEDULE)


@pytest.mark.parametrize("name,entry", [("transit", "gtfs-static-pipeline"), ("founders", "founders-promo"),
                                        ("booking", "booking-start-sessions"),
                                        ("gift_exchange", "gift-auto-complete")])
def test_selecting_one_adds_its_tasks_and_its_entries_only(name, entry):
    environ = {"BEATKEEPER_EXAMPLE": name}
    assert task_modules(environ) == [*BUILTIN_TASK_MODULES, f"examples.{name}.jobs"]
    schedule = effective_schedule(environ)
    assert entry in schedule
    others = {"transit": "gtfs-rt-poll", "founders": "founders-promo", "booking": "booking-end-sessions",
              "gift_exchange": "gift-purge"}
    assert not {e for n, e in others.items() if n != name} & set(schedule)


def test_an_unknown_example_is_one_settings_error_naming_the_choices():
    with pytest.raises(SettingsError) as caught:
        selected_example({"BEATKEEPER_EXAMPLE": "founder"})
    assert str(caught.value) == ("BEATKEEPER_EXAMPLE='founder': no such example; "
                                 "choose one of booking, founders, gift_exchange, transit")
    assert task_modules({"BEATKEEPER_EXAMPLE": "founder"}) == BUILTIN_TASK_MODULES  # check refuses it first


def test_make_run_refuses_an_unknown_example_before_starting_anything(monkeypatch):
    from tasks.cli.runner import RunnerError, check_task_modules

    monkeypatch.setenv("BEATKEEPER_EXAMPLE", "bookings")
    with pytest.raises(RunnerError) as caught:
        check_task_modules()
    assert str(caught.value).startswith("BEATKEEPER_EXAMPLE='bookings': no such example; choose one of ")
