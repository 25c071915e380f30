"""Sinks: a real webhook receiver and a real SMTP server get the notifications; failures are
retried with backoff, logged, and never stop anything; one incident is one alert and one resolve."""
from __future__ import annotations

import logging

import pytest

from monitoring.alerts import Alert, Notification, NotificationKind, Severity
from monitoring.heartbeats import HeartbeatRun, record_heartbeat
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.rules.settings import MonitorSettingError
from monitoring.sinks import (OUTBOX_PREFIX, Dispatcher, LogSink, SmtpSink, WebhookSink, sinks_from_env,
                              smtp_settings_from_env)
from tests.monitoring.monitor_fixtures import mail, webhook  # noqa: F401  (fixtures)
from tests.monitoring.monitor_fixtures import RecordingSink, WebhookReceiver, evaluate, make_monitor, specs_of, ts

NOW = 1_780_000_000.0
ALERT = Alert("missed_run", "nightly", Severity.CRITICAL, "entry nightly missed 1 scheduled run(s)", {"count": 1})


def note(kind: NotificationKind = NotificationKind.FIRING) -> Notification:
    return Notification(kind, ALERT, at=NOW, since=NOW)


def test_the_webhook_gets_slack_text_and_the_structured_alert(webhook):
    WebhookSink(webhook.url).send(note())
    [body] = webhook.bodies
    assert body["text"] == note().text
    assert body["kind"] == "firing"
    assert body["alert"] == {"rule": "missed_run", "subject": "nightly", "severity": "critical",
                             "summary": ALERT.summary, "details": {"count": 1}}


def test_smtp_delivers_a_mail_whose_subject_is_the_message(mail):
    SmtpSink(smtp_settings_from_env({"BEATKEEPER_ALERT_SMTP_TO": "oncall@example.org, boss@example.org",
                                     "BEATKEEPER_ALERT_SMTP_PORT": str(mail.port),
                                     "BEATKEEPER_ALERT_SMTP_FROM": "beatkeeper@example.org"}, "127.0.0.1")).send(note())
    [(recipients, message)] = mail.messages
    assert recipients == ["oncall@example.org", "boss@example.org"]
    assert message["Subject"] == f"[beatkeeper] {note().text}"
    assert message["From"] == "beatkeeper@example.org"
    assert "entry nightly missed" in message.get_content()


def test_a_failing_webhook_is_retried_with_doubling_backoff_and_delivered_once(redis_client, caplog):
    receiver = WebhookReceiver(failures=2)
    waits: list[float] = []
    try:
        dispatcher = Dispatcher([WebhookSink(receiver.url)], client=redis_client, attempts=5,
                                wait=lambda s: waits.append(s) or False)
        with redis_client.pipeline() as pipe:
            dispatcher.stage(pipe, [note()])
            pipe.execute()
        with caplog.at_level(logging.WARNING, logger="monitoring.sinks"):
            assert dispatcher.deliver_pending() == 1
        assert receiver.requests == 3 and len(receiver.bodies) == 1
        assert waits == [1.0, 2.0]
        assert len([r for r in caplog.records if "webhook delivery failed" in r.getMessage()]) == 2
        assert redis_client.llen(OUTBOX_PREFIX + "webhook") == 0
        assert dispatcher.deliveries[0].failing_since is None
    finally:
        receiver.close()


def test_a_sink_that_keeps_failing_gives_up_logs_the_text_and_does_not_stall_the_next(redis_client, caplog):
    sink = RecordingSink("pager", failures=3)
    dispatcher = Dispatcher([sink], client=redis_client, attempts=3, wait=lambda _s: False)
    second = Notification(NotificationKind.RESOLVED, ALERT, at=NOW + 60, since=NOW)
    dispatcher.keep_locally([note(), second])
    with caplog.at_level(logging.ERROR, logger="monitoring.sinks"):
        assert dispatcher.deliver_pending() == 1  # never raises
    assert [n.kind for n in sink.sent] == [NotificationKind.RESOLVED]
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert gave_up == [f"alerts: pager gave up on a notification after 3 attempt(s): {note().text}"]
    assert dispatcher.deliveries[0].dropped == 1


def test_queued_notifications_survive_a_restart_of_the_monitor(redis_client):
    first = Dispatcher([RecordingSink("pager", failures=99)], client=redis_client, attempts=1, wait=lambda _s: True)
    with redis_client.pipeline() as pipe:
        first.stage(pipe, [note()])
        pipe.execute()
    restarted_sink = RecordingSink("pager")
    assert Dispatcher([restarted_sink], client=redis_client).deliver_pending() == 1
    assert [n.text for n in restarted_sink.sent] == [note().text]


def test_a_delivery_stopped_during_its_backoff_keeps_the_notification_queued(redis_client):
    sink = RecordingSink("pager", failures=1)
    dispatcher = Dispatcher([sink], client=redis_client, attempts=5, wait=lambda _s: True)  # "stop now"
    with redis_client.pipeline() as pipe:
        dispatcher.stage(pipe, [note()])
        pipe.execute()
    assert dispatcher.deliver_pending() == 0
    assert redis_client.llen(OUTBOX_PREFIX + "pager") == 1 and dispatcher.deliveries[0].dropped == 0


def test_the_log_sink_writes_one_json_line_per_notification(caplog):
    with caplog.at_level(logging.INFO, logger="beatkeeper.alerts"):
        LogSink().send(note())
        LogSink().send(note(NotificationKind.RESOLVED))
    levels = [(r.levelno, r.getMessage().startswith("{")) for r in caplog.records if r.name == "beatkeeper.alerts"]
    assert levels == [(logging.ERROR, True), (logging.INFO, True)]


def test_sinks_are_chosen_by_the_environment():
    assert [s.name for s in sinks_from_env({})] == ["log"]
    sinks = sinks_from_env({"BEATKEEPER_ALERT_WEBHOOK_URL": "https://hooks.example.org/x",
                            "BEATKEEPER_ALERT_SMTP_HOST": "smtp.example.org", "BEATKEEPER_ALERT_SMTP_PORT": "587",
                            "BEATKEEPER_ALERT_SMTP_TO": "oncall@example.org", "BEATKEEPER_ALERT_SMTP_USER": "u"})
    assert [s.name for s in sinks] == ["log", "webhook", "smtp"]
    assert sinks[2].settings.tls == "starttls" and sinks[2].settings.user == "u"


@pytest.mark.parametrize("environ, variable", [
    ({"BEATKEEPER_ALERT_SMTP_HOST": "smtp.example.org"}, "BEATKEEPER_ALERT_SMTP_TO"),
    ({"BEATKEEPER_ALERT_WEBHOOK_URL": "hooks.example.org"}, "BEATKEEPER_ALERT_WEBHOOK_URL"),
    ({"BEATKEEPER_ALERT_SMTP_HOST": "h", "BEATKEEPER_ALERT_SMTP_TO": "a@b", "BEATKEEPER_ALERT_SMTP_TLS": "yes"},
     "BEATKEEPER_ALERT_SMTP_TLS"),
], ids=["smtp_without_recipients_is_refused", "webhook_without_scheme_is_refused", "unknown_tls_mode_is_refused"])
def test_unusable_sink_settings_are_refused_naming_the_variable(environ, variable):
    with pytest.raises(MonitorSettingError) as error:
        sinks_from_env(environ)
    assert error.value.variable == variable


def test_one_incident_reaches_webhook_and_mail_once_firing_once_resolved(redis_client, webhook, mail):
    sinks = sinks_from_env({"BEATKEEPER_ALERT_WEBHOOK_URL": webhook.url, "BEATKEEPER_ALERT_SMTP_HOST": "127.0.0.1",
                            "BEATKEEPER_ALERT_SMTP_PORT": str(mail.port), "BEATKEEPER_ALERT_SMTP_TO": "oncall@x.org"})
    specs = specs_of({"beatkeeper-heartbeat": {"task": "beatkeeper.heartbeat", "every": 60}})
    monitor = make_monitor(redis_client, specs, sinks=sinks[1:], rules=[HeartbeatRule()], heartbeat_max_age_s=180)
    record_heartbeat(redis_client, HeartbeatRun(executed_at=ts(0), worker="w", task_id="t", scheduled_at=ts(0)))
    for second in range(0, 180, 5):  # healthy
        evaluate(monitor, second)
    for second in range(185, 1000, 5):  # beat stopped: the heartbeat ages past 3 min, for many cycles
        evaluate(monitor, second)
    for second in range(1000, 1400, 5):  # beat back: a heartbeat a minute
        if second % 60 == 40:
            record_heartbeat(redis_client, HeartbeatRun(executed_at=ts(second), worker="w", task_id=f"t{second}",
                                                        scheduled_at=ts(second)))
        evaluate(monitor, second)
    assert webhook.kinds("beat_heartbeat") == ["firing", "resolved"]
    assert [s.split("]")[1].strip("[ ") for s in mail.subjects()] == ["FIRING critical", "RESOLVED"]
    assert webhook.bodies[0]["at"] == ts(185)  # the first evaluation past 180 s
