"""Pipelines built, not sent: the chain's shape, the steps' retry rules and declared policies,
the GTFS settings and the schedule entry, all checked without a broker."""
from __future__ import annotations

import inspect
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.canvas import _chain
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from examples.transit import jobs  # noqa: F401  (registers the transit example's tasks)
from schedules.platform import effective_schedule
from schedules.settings import ScheduleSettings
from schedules.validate import validate_schedule
from examples.transit import gtfs_tasks
from tasks import headers
from examples.transit.gtfs import GtfsDownloadError, GtfsFeedError, GtfsPublishError, GtfsStateError
from examples.transit.gtfs_tasks import GTFS_STATIC_PIPELINE, GtfsSettingError, GtfsSettings, build_gtfs_pipeline
from schedules.entry import RetrySpec
from tasks.pipelines.definition import Pipeline, PipelineError, Step, build, pipeline_named
from tasks.policy import declared_fields, lock_key_for, resolve_policy

GTFS_PIPELINE_ENTRY, PIPELINE_RESUME_ENTRY = "gtfs-static-pipeline", "gtfs-pipeline-resume-stalled"
SETTINGS = GtfsSettings(feed_url="https://feeds.example/gtfs.zip", database_url="sqlite:////data/gtfs.db",
                        export_path="/data/export/gtfs.sqlite", publish_target="https://cdn.example/gtfs/")
PARAMS_OF = {"sync": {"feed_url", "database_url"}, "refresh": {"database_url"},
             "export": {"database_url", "export_path"}, "publish": {"export_path", "publish_target"}}


@pytest.mark.parametrize("done, sent", [
    ((), ["sync", "refresh", "export", "publish"]),
    (("sync", "refresh"), ["export", "publish"]),
    (("sync", "export"), ["refresh", "export", "publish"]),
    (("sync", "refresh", "export"), ["publish"]),
], ids=["a_new_run_sends_every_step", "resume_after_refresh_starts_at_export",
        "every_step_after_the_first_not_done_is_sent", "resume_before_the_last_step_sends_only_it"])
def test_the_chain_starts_at_the_first_step_not_done(done, sent):
    signature = build_gtfs_pipeline(run_id="run-7", settings=SETTINGS, done=done)
    assert isinstance(signature, _chain)
    assert [s.task for s in signature.tasks] == [gtfs_tasks.GTFS_STATIC_PIPELINE.step(n).task for n in sent]


def test_each_step_is_immutable_and_carries_the_run_id_and_only_its_parameters():
    signature = build_gtfs_pipeline(run_id="run-7", settings=SETTINGS)
    params = SETTINGS.as_params()
    for step, sig in zip(GTFS_STATIC_PIPELINE.steps, signature.tasks):
        assert sig.immutable  # a step reads the run's parameters, never the previous return value
        assert sig.options["headers"] == {headers.PIPELINE_RUN: "run-7"}
        assert sig.kwargs == {"pipeline_run_id": "run-7", **{p: params[p] for p in PARAMS_OF[step.name]}}
        assert sig.args == ()


def test_the_built_chain_round_trips_through_json_as_sent():
    import json

    from celery import signature as from_dict

    built = build_gtfs_pipeline(run_id="run-7", settings=SETTINGS, done=("sync",))
    decoded = from_dict(json.loads(json.dumps(built)))
    assert [(s.task, s.kwargs, s.options["headers"]) for s in decoded.tasks] == [
        (s.task, s.kwargs, s.options["headers"]) for s in built.tasks]


@pytest.mark.parametrize("make, problem", [
    (lambda: build(GTFS_STATIC_PIPELINE, run_id="r", params={"feed_url": "f"}),
     "missing run parameter(s): database_url, export_path, publish_target"),
    (lambda: build(GTFS_STATIC_PIPELINE, run_id="r", params=SETTINGS.as_params(),
                   done=GTFS_STATIC_PIPELINE.step_names), "run r: every step is done already"),
    (lambda: Pipeline(name="p", start_task="p.start", steps=()), "has no steps"),
    (lambda: Pipeline(name="p", start_task="p.start", steps=(Step("a", task="t.a"), Step("a", task="t.b"))),
     "step name used twice: a"),
    (lambda: Pipeline(name="p", start_task="p.start", steps=(Step("a", task="t.a"), Step("b", task="t.a"))),
     "step task used twice: t.a"),
    (lambda: pipeline_named("nope"), "is not registered (registered: "),
], ids=["missing_parameters_are_named", "a_run_with_every_step_done_has_nothing_to_send", "a_pipeline_needs_steps",
        "step_names_are_unique", "a_task_runs_one_step", "an_unknown_pipeline_names_the_known_ones"])
def test_definition_and_build_errors(make, problem):
    with pytest.raises(PipelineError) as caught:
        make()
    assert caught.value.problem.startswith(problem)


@given(retries=st.integers(min_value=0, max_value=40), jitter=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_a_retry_waits_between_half_and_all_of_the_capped_exponential_backoff(retries, jitter):
    policy = RetrySpec(max_retries=5, backoff_s=30, backoff_max_s=600)
    ceiling_s = min(30 * 2 ** retries, 600)
    assert ceiling_s / 2 <= policy.delay_s(retries, jitter=jitter) <= ceiling_s
    assert policy.delay_s(retries, jitter=0.0) <= policy.delay_s(retries + 1, jitter=0.0)


def test_jitter_spreads_retries_of_the_same_attempt():
    policy = RetrySpec(backoff_s=30, backoff_max_s=600)
    assert policy.delay_s(2, jitter=0.0) == 60 and policy.delay_s(2, jitter=0.5) == 90


@pytest.mark.parametrize("step, error, retried", [
    ("sync", GtfsDownloadError("https://f", "HTTP 503"), True),
    ("sync", GtfsFeedError("is not a valid GTFS time", file="stop_times.txt", line=7), False),
    ("sync", OperationalError("SELECT 1", {}, ConnectionError("gone")), True),
    ("refresh", GtfsStateError("no GTFS feed is loaded", hint="run the sync step first"), False),
    ("export", FileExistsError("/data/export"), True),
    ("publish", GtfsPublishError("https://cdn", "PUT manifest.json: HTTP 503", status=503), True),
    ("publish", ValueError("a bug"), False),
], ids=["sync_retries_a_download_error", "sync_fails_a_bad_feed_at_once", "a_lost_database_is_retried",
        "steps_out_of_order_are_not_retried", "export_retries_a_disk_error", "publish_retries_a_refused_put",
        "an_unexpected_error_is_not_retried"])
def test_which_errors_a_step_retries(step, error, retried):
    assert GTFS_STATIC_PIPELINE.step(step).retries(error) is retried


def test_step_tasks_lock_per_run_and_declare_their_max_runtime(app):
    for step in GTFS_STATIC_PIPELINE.steps:
        task = app.tasks[step.task]
        policy = resolve_policy(task.name, declared_fields(task), max_lock_ttl_s=3600)
        assert policy.max_runtime_s == step.max_runtime_s
        key = lambda run_id: lock_key_for(task.name, policy, signature=inspect.signature(task.run), args=(),  # noqa
                                          kwargs={"pipeline_run_id": run_id, **SETTINGS.as_params()})
        assert key("run-1") == key("run-1") != key("run-2")
    start = app.tasks[gtfs_tasks.START_TASK]
    assert resolve_policy(start.name, declared_fields(start), max_lock_ttl_s=3600).lock_key == ()


def test_settings_default_under_the_data_dir(tmp_path):
    settings = GtfsSettings.from_env({"GTFS_STATIC_URL": "https://f/gtfs.zip", "BEATKEEPER_DATA_DIR": str(tmp_path)})
    assert settings == GtfsSettings(feed_url="https://f/gtfs.zip", database_url=f"sqlite:///{tmp_path}/gtfs/gtfs.db",
                                    export_path=f"{tmp_path}/gtfs/export/gtfs.sqlite",
                                    publish_target=f"{tmp_path}/gtfs/published")


@pytest.mark.parametrize("environ, variable, problem", [
    ({}, "GTFS_STATIC_URL", "must name the GTFS static feed zip"),
    ({"GTFS_STATIC_URL": "f", "GTFS_DATABASE_URL": "postgresql://u:secret@db/gtfs"}, "GTFS_DATABASE_URL",
     "Postgres URLs must start with postgresql+psycopg2://"),
    ({"GTFS_STATIC_URL": "f", "GTFS_DATABASE_URL": "mysql://db/gtfs"}, "GTFS_DATABASE_URL",
     "must be a sqlite:/// or postgresql+psycopg2:// URL"),
], ids=["the_feed_is_required", "postgres_needs_the_psycopg2_driver", "other_databases_are_refused"])
def test_bad_settings_name_the_variable(environ, variable, problem):
    with pytest.raises(GtfsSettingError) as caught:
        GtfsSettings.from_env(environ)
    assert (caught.value.variable, caught.value.problem) == (variable, problem)
    assert "secret" not in str(caught.value)


def test_a_psycopg2_url_is_accepted():
    url = "postgresql+psycopg2://u:pw@db/gtfs"
    assert GtfsSettings.from_env({"GTFS_STATIC_URL": "f", "GTFS_DATABASE_URL": url}).database_url == url


def test_the_schedule_entry_exists_only_with_the_transit_example_and_fires_daily_at_three_in_sydney(app):
    assert not {GTFS_PIPELINE_ENTRY, PIPELINE_RESUME_ENTRY} & set(effective_schedule({}))
    assert not {GTFS_PIPELINE_ENTRY, PIPELINE_RESUME_ENTRY} & set(effective_schedule({"GTFS_STATIC_URL": "f"}))
    schedule = effective_schedule({"BEATKEEPER_EXAMPLE": "transit"})
    now = datetime(2026, 10, 2, 12, 0, tzinfo=timezone.utc)  # Sydney springs forward on 4 October
    validated = validate_schedule(schedule, settings=ScheduleSettings(), registered_tasks=set(app.tasks), now=now)
    spec = validated.entries[GTFS_PIPELINE_ENTRY]
    assert (spec.task, spec.overlap.value, spec.expires_s) == (gtfs_tasks.START_TASK, "skip", 7200)
    sweeper = validated.entries[PIPELINE_RESUME_ENTRY]
    assert (sweeper.task, sweeper.lock_key) == ("beatkeeper.pipeline.resume_stalled", [])
    fires, at = [], now
    for _ in range(3):
        at = spec.trigger.next_fire_after(at)
        fires.append(at.astimezone(ZoneInfo("Australia/Sydney")))
    assert [(f.day, f.hour, f.minute) for f in fires] == [(3, 3, 0), (4, 3, 0), (5, 3, 0)]
    assert [f.utcoffset().total_seconds() / 3600 for f in fires] == [10, 11, 11]  # 03:00 local across the change
