"""The broker apart from the state store (``CELERY_BROKER_URL``, ``tasks.infra.broker``): defaults pinned,
publisher confirms for RabbitMQ, and the consumer_timeout finding."""
from __future__ import annotations

import importlib

import pytest
from celery import Celery

import celeryconfig
from tasks.infra.broker import broker_redis, consumer_timeout_findings, watches_deliveries

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def reload_config(monkeypatch):
    def load(**environ: str | None):
        for name, value in environ.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        return importlib.reload(celeryconfig)
    yield load
    monkeypatch.undo()
    importlib.reload(celeryconfig)


def test_the_broker_is_the_state_redis_by_default_without_publisher_confirms(reload_config):
    config = reload_config(CELERY_BROKER_URL=None, REDIS_URL="redis://state:6379/0")
    assert config.broker_url == "redis://state:6379/0"
    assert "confirm_publish" not in config.broker_transport_options
    assert config.rabbitmq_consumer_timeout_s == 1800  # RabbitMQ's own default, 30 min


def test_an_amqp_broker_publishes_with_confirms_and_no_tls_options_of_redis(reload_config):
    config = reload_config(CELERY_BROKER_URL=AMQP, REDIS_URL="rediss://state:6380/0")
    assert config.broker_url == AMQP and config.broker_transport_options["confirm_publish"] is True
    assert config.broker_use_ssl is None
    assert config.redbeat_redis_url == "rediss://state:6380/0"  # the state stays in Redis


def an_app(broker_url: str, **conf) -> Celery:
    app = Celery("t", set_as_current=False)
    app.conf.update({"broker_url": broker_url, "redis_url": "redis://127.0.0.1:1/0", "task_acks_late": True,
                     "max_lock_ttl_s": 3600.0, "task_time_limit": None, **conf})
    return app


def test_rabbitmq_consumer_timeout_below_the_longest_run_is_one_start_up_line():
    [finding] = consumer_timeout_findings(an_app(AMQP))
    assert (finding.check, finding.fatal) == ("rabbitmq-consumer-timeout", False)
    assert finding.message == (
        "RabbitMQ consumer_timeout 1800 s (BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT) is shorter than the longest "
        "expected run, 3600 s (BEATKEEPER_MAX_LOCK_TTL): with late acks RabbitMQ closes the channel of a longer "
        "run and redelivers its message; raise consumer_timeout in rabbitmq.conf and state it in "
        "BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT")
    assert "600 s (task_time_limit)" in consumer_timeout_findings(
        an_app(AMQP, task_time_limit=600, rabbitmq_consumer_timeout_s=300))[0].message


@pytest.mark.parametrize("conf", [{"rabbitmq_consumer_timeout_s": 3600}, {"task_time_limit": 1800},
                                  {"task_acks_late": False}])
def test_no_finding_when_the_timeout_covers_the_longest_run_or_acks_are_early(conf):
    assert consumer_timeout_findings(an_app(AMQP, **conf)) == []


def test_a_redis_broker_has_no_consumer_timeout_and_keeps_the_delivery_watch():
    app = an_app("redis://broker:6379/1")
    assert consumer_timeout_findings(app) == [] and watches_deliveries(app)
    assert broker_redis(app).connection_pool.connection_kwargs["host"] == "broker"  # the broker's, not the state's
    amqp = an_app(AMQP)
    assert not watches_deliveries(amqp) and broker_redis(amqp) is None


def test_a_broker_apart_that_is_down_is_named_by_its_own_setting(caplog):
    import logging

    from tasks.infra.errors import wait_for_broker
    from tests.servers import free_port

    port = free_port()
    app = an_app(f"amqp://guest:secret@127.0.0.1:{port}//", broker_connection_max_retries=1)
    log = logging.getLogger("test.broker")
    with caplog.at_level(logging.WARNING, logger="test.broker"), pytest.raises(Exception):
        wait_for_broker(app, who="beat", log=log)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"beat: the broker at CELERY_BROKER_URL=amqp://guest:**@127.0.0.1:{port}// is "
                           "unreachable: ") and "secret" not in line
