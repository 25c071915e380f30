"""The guarded task base: the app's default ``task_cls``, so every task gets it.

Task bodies stay plain functions. Where a task executes (a worker, or ``apply()``), the
guard builds a ``Run``, passes it through the app's middlewares (``tasks.guard.middleware``) and
runs the body only if none skipped it. Scheduled, hand-triggered (``celery -A tasks call``,
``send_task``) and retried runs all go through the same path; calling the task object as a
plain function (``my_task(1)``) is not a task run and is not guarded.

Which middlewares a run passes through is decided per run (``tasks.guard.scope``): a plain
run (no schedule entry, no declared policy) runs as a plain Celery task would, recorded but
never refused for overlap or budget.

A run that never executes ends ``REVOKED`` — Celery's terminal state for a task that did not
run — in the result backend (``AsyncResult.result`` is a ``TaskRevokedError`` whose message
is ``"<status>: <reason>"``, e.g. ``skipped_overlap: the previous run still holds the lock``)
and in the task events (a ``task-revoked`` event carrying ``reason`` and ``beatkeeper_status``),
so Flower, celery-exporter and ``AsyncResult.get()`` see it end; then Celery's ``Ignore``.
A scheduled run is named ``<task> [<entry> @ <instant>]`` in the events (Celery's ``shadow``),
so Flower's task list shows which entry and instant each run is.
"""
from __future__ import annotations

import inspect
import logging
import time
from datetime import datetime
from typing import Any, Sequence

from celery import Task, signals, states
from celery.app.task import Context
from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError

from tasks import headers
from tasks.guard.eta_limit import refuse_long_delay
from tasks.guard.identity import CLAIM_RETRY, CLAIM_RETRY_ERRORS
from tasks.guard.middleware import Middleware
from tasks.guard.overlap import HANDOFF_HEADER
from tasks.guard.policy_check import POLICY_PROBLEM
from tasks.guard.retry import retry_for
from monitoring.run_status import RunStatus
from tasks.guard.run import LostRun, Outcome, Run, RunSkipped, Skip
from tasks.guard.scope import is_plain
from tasks.policy import OverlapPolicy, PolicyError, RunPolicy, declared_fields, lock_key_for, resolve_policy

log = logging.getLogger(__name__)

_RUN_ATTRIBUTE = "beatkeeper_run"  # the current Run, on task.request


class GuardedTask(Task):
    """Celery Task whose runs pass through the app's middlewares.

    Policy declaration (all optional, see ``tasks.policy``)::

        @app.task(overlap="skip", lock_ttl_s=60, lock_key=["feed_id"], max_runtime_s=600, time_limit=900)
    """

    overlap: str | None = None
    lock_ttl_s: float | None = None
    lock_key: Sequence[str] | None = None
    max_runtime_s: float | None = None
    #: True: running the body again for a run that succeeded repeats nothing (it returns the
    #: stored result), so a redelivery after the worker died unacknowledged runs it, and a
    #: chain's next step is still sent. False: such a delivery is skipped as a duplicate.
    idempotent: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request_stack.top
        if request is None or request.called_directly:
            return super().__call__(*args, **kwargs)
        return _guarded_call(self, request, args, kwargs)

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None, link_error=None,
                    shadow=None, **options):
        """Celery's apply_async, refusing a countdown/ETA the Redis broker would redeliver."""
        refuse_long_delay(self.app, self.name, countdown=options.get("countdown"), eta=options.get("eta"))
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)

    def shadow_name(self, args, kwargs, options) -> str | None:
        """Celery's name for the run in events and logs: a scheduled run's shows its entry and instant."""
        return headers.run_label(self.name, options.get("headers") or {})

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None,
              max_retries=None, **options):
        """Celery's retry, with beatkeeper's headers carried over and the lock handed to the retry."""
        request = self.request
        carried = {h: getattr(request, h) for h in headers.CARRIED_ON_RETRY if getattr(request, h, None)}
        run: Run | None = getattr(request, _RUN_ATTRIBUTE, None)
        if run is not None:
            for middleware in self.app.beatkeeper.middlewares:
                carried.update(middleware.retry_headers(run))
        options["headers"] = {**carried, **(options.get("headers") or {})}
        return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta, countdown=countdown,
                             max_retries=max_retries, **options)


def build_run(task: Task, request: Any, args: Sequence[Any], kwargs: dict[str, Any], *,
              received_at: float) -> Run:
    """The Run for ``request``: its policy resolved (published entry > published task > declaration
    > defaults) and its entry's retry policy as beat published it; never a message's own policy
    or retry header. A policy that cannot be used does not raise here: the run carries the error
    and fails inside the guard, recorded (``policy_check``)."""
    declared, max_lock_ttl_s = _declaration(task)
    entry = headers.entry_of(request)
    published = task.app.beatkeeper.published
    state: dict[str, Any] = {}
    entry_retry = None
    try:
        policy = resolve_policy(task.name, published.entry_fields(entry, task.name), published.fields_for(task.name),
                                declared, max_lock_ttl_s=max_lock_ttl_s)
        entry_retry = published.entry_retry(entry, task.name)
        lock_key = None
        if policy.overlap is not OverlapPolicy.ALLOW:
            lock_key = lock_key_for(task.name, policy, signature=_signature(task), args=args, kwargs=kwargs)
    except PolicyError as exc:
        policy, lock_key, entry_retry = RunPolicy(overlap=OverlapPolicy.ALLOW), None, None
        state[POLICY_PROBLEM] = exc
    delivery = getattr(request, "delivery_info", None) or {}
    return Run(task_name=task.name, task_id=request.id or "", args=tuple(args), kwargs=dict(kwargs),
               policy=policy, lock_key=lock_key, received_at=received_at,
               entry=entry, fire_at=headers.fire_at_of(request),
               retries=request.retries or 0, redelivered=bool(delivery.get("redelivered")),
               idempotent=bool(getattr(task, "idempotent", False)),
               hostname=request.hostname or "", expires_at=_timestamp(getattr(request, "expires", None)),
               handoff_token=getattr(request, HANDOFF_HEADER, None), state=state,
               beat_fence=getattr(request, headers.BEAT_FENCE, None), entry_retry=entry_retry)


def _guarded_call(task: Task, request: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    run = _build_run_through_redis_outage(task, request, args, kwargs)
    chain = _middlewares_for(task, run)
    setattr(request, _RUN_ATTRIBUTE, run)
    entered: list[Middleware] = []
    outcome: Outcome | None = None
    try:
        skip: Skip | None = None
        for middleware in chain:
            try:
                skip = middleware.before_run(run)
            except CLAIM_RETRY_ERRORS as exc:  # nothing ran: the message comes again once Redis is back
                raise Reject(f"Redis unreachable in {type(middleware).__name__} before {task.name}[{request.id}] "
                             f"could start: {exc!r}", requeue=True) from exc
            if skip is not None:
                break
            entered.append(middleware)
        _dispatch_lost(chain, run.lost)
        if skip is not None:
            outcome = Outcome(status=skip.status, finished_at=time.time(), reason=skip.reason)
            if skip.store_result:
                _store_not_run(task, request, outcome)
            raise Ignore(skip.reason)
        request.fencing_token = run.fencing_token
        run.started_at = time.time()
        try:
            result = task.run(*args, **kwargs)
        except Retry as exc:
            outcome = Outcome.of_error(RunStatus.RETRY, exc, finished_at=time.time())
            raise
        except Ignore:
            outcome = Outcome(status=RunStatus.SUCCESS, finished_at=time.time(), reason="ignored by the task")
            raise
        except RunSkipped as skipped:
            outcome = Outcome(status=skipped.status, finished_at=time.time(), reason=skipped.reason)
            return skipped.result
        except BaseException as exc:
            retry = retry_for(task, request, exc, run.entry_retry)  # the entry's retry policy, if it has one
            status = RunStatus.FAILURE if retry is None else RunStatus.RETRY
            outcome = Outcome.of_error(status, exc, finished_at=time.time())
            if retry is not None:
                raise retry from exc
            raise
        outcome = Outcome(status=RunStatus.SUCCESS, finished_at=time.time())
        return result
    except BaseException as exc:
        if outcome is None and isinstance(exc, Reject) and exc.requeue:
            # A middleware sent the message back (Redis away at the claim): it comes again, as a retry does.
            outcome = Outcome.of_error(RunStatus.RETRY, exc, finished_at=time.time())
        if outcome is None:  # a middleware's before_run raised: the run failed before its body
            outcome = Outcome.of_error(RunStatus.FAILURE, exc, finished_at=time.time())
        raise
    finally:
        for middleware in reversed(entered):
            try:
                middleware.after_run(run, outcome)
            except Exception:  # one failing release must not keep the others from releasing
                log.exception("%s.after_run failed for %s[%s]", type(middleware).__name__, run.task_name, run.task_id)


def _middlewares_for(task: Task, run: Run) -> tuple[Middleware, ...]:
    """The full guard, or for a plain run each middleware's plain variant (``tasks.guard.scope``)."""
    shared = task.app.beatkeeper  # tasks.wiring
    published = shared.published.fields_for(task.name)
    if not published and is_plain(task, entry=run.entry, declared=_declaration(task)[0], scheduled=shared.scheduled):
        return shared.plain_middlewares
    return shared.middlewares


def _build_run_through_redis_outage(task: Task, request: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Run:
    """build_run (it reads the published policies), retried as the claim is; if Redis stays away
    the message goes back to the queue: nothing ran, so it is no failure of the task."""
    received_at = time.time()
    try:
        return CLAIM_RETRY.call_with_retry(
            lambda: build_run(task, request, args, kwargs, received_at=received_at),
            lambda exc: log.warning("%s[%s]: Redis error before the run (%r); retrying", task.name, request.id, exc))
    except CLAIM_RETRY_ERRORS as exc:
        raise Reject(f"Redis unreachable before {task.name}[{request.id}] could start: {exc!r}", requeue=True) from exc


def _dispatch_lost(chain: Sequence[Middleware], lost_runs: Sequence[LostRun]) -> None:
    for lost in lost_runs:
        for middleware in chain:
            try:
                middleware.on_run_lost(lost)
            except Exception:
                log.exception("%s.on_run_lost failed for %s", type(middleware).__name__, lost.task_id)


def _store_not_run(task: Task, request: Any, outcome: Outcome) -> None:
    """End a run that never executed as REVOKED, with its reason, in the backend and the events."""
    if request.is_eager:
        return
    reason = f"{outcome.status.value}: {outcome.reason}"
    try:
        if not (request.ignore_result or task.ignore_result):
            task.backend.mark_as_revoked(request.id, reason, request=request, state=states.REVOKED)
        # The worker sends no event after Ignore: without this one, Flower shows STARTED for ever.
        task.send_event("task-revoked", terminated=False, signum=None,
                        expired=outcome.status is RunStatus.EXPIRED, reason=reason,
                        beatkeeper_status=outcome.status.value, result=reason,
                        exception=repr(TaskRevokedError(reason)))
    except Exception:  # the skip itself is recorded by history; its display must not fail the run
        log.exception("could not publish the end of skipped run %s[%s]", task.name, request.id)


@signals.task_revoked.connect
def _on_task_revoked(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    """A message that arrived after its ``expires`` is dropped by Celery before the guard runs."""
    if not expired or not isinstance(sender, GuardedTask) or request is None:
        return
    try:
        # The worker passes its request Context; older paths passed the Request itself.
        context = Context(request.request_dict) if hasattr(request, "request_dict") else request
        run = build_run(sender, context, context.args or (), context.kwargs or {}, received_at=time.time())
    except Exception:
        log.exception("could not describe expired run %s", getattr(request, "id", "?"))
        return
    for middleware in sender.app.beatkeeper.middlewares:
        try:
            middleware.on_expired(run)
        except Exception:
            log.exception("%s.on_expired failed for %s", type(middleware).__name__, run.task_id)


def _declaration(task: Task) -> tuple[dict[str, Any], float]:
    # A task's declaration and the app's TTL cap are fixed once the worker runs: read them once
    # (per-run reads were a quarter of the guard's CPU cost).
    cached = task.__dict__.get("_beatkeeper_declaration")
    if cached is None:
        cached = (declared_fields(task), float(task.app.conf.max_lock_ttl_s))
        task.__dict__["_beatkeeper_declaration"] = cached
    return cached


def _signature(task: Task) -> inspect.Signature | None:
    cached = task.__dict__.get("_beatkeeper_signature", False)
    if cached is False:
        try:
            cached = inspect.signature(task.run)
        except (TypeError, ValueError):
            cached = None
        task.__dict__["_beatkeeper_signature"] = cached
    return cached


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()
