"""The one-line rendering of infrastructure errors, and the logging filter that applies it,
on real exceptions from a real (closed) Redis port and a real SQLAlchemy engine."""
from __future__ import annotations

import io
import logging

import pytest
import redis
import sqlalchemy

from tasks.infra.errors import OneLineInfraErrors, infra_error_line, masked_redis_url
from tests.servers import free_port


def _refused(port: int) -> redis.ConnectionError:
    with pytest.raises(redis.ConnectionError) as caught:
        redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1).ping()
    return caught.value


def _logged(logger_name: str, emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OneLineInfraErrors())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_logged_redis_error_is_one_line_naming_redis_url_without_its_password():
    port = free_port()
    environ = {"REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0"}
    error = _refused(port)
    assert infra_error_line(error, environ) == (
        f"Redis unreachable at REDIS_URL=redis://:**@127.0.0.1:{port}/0: Error 111 connecting to 127.0.0.1:{port}. "
        "Connection refused.")

    def emit(logger):
        try:
            raise RuntimeError("Retry limit exceeded") from error  # how Celery's result backend wraps it
        except RuntimeError:
            logger.error("beat raised exception", exc_info=True)
    text = _logged("test.infra.redis", emit)
    assert len(text.splitlines()) == 1 and "Traceback" not in text
    assert text.startswith("beat raised exception Redis unreachable at REDIS_URL=") and "hunter2" not in text


def test_celerys_two_line_retry_message_becomes_one_line():
    text = _logged("test.infra.consumer", lambda logger: logger.error(
        "consumer: Cannot connect to %s: %s.\n%s\n", "redis://:**@127.0.0.1:1/0", "Error 111",
        "Trying again in 2.00 seconds... (1/None)"))
    assert text.splitlines() == ["consumer: Cannot connect to REDIS_URL=redis://:**@127.0.0.1:1/0: Error 111. "
                                 "Trying again in 2.00 seconds... (1/None)"]


def test_a_real_bug_keeps_its_traceback():
    def emit(logger):
        try:
            {}["missing"]
        except KeyError:
            logger.exception("rule failed")
    text = _logged("test.infra.bug", emit)
    assert "Traceback" in text and "KeyError" in text


def test_an_unreachable_database_names_database_url_with_the_password_masked():
    port = free_port()
    url = f"postgresql+psycopg2://beatkeeper:hunter2@127.0.0.1:{port}/beatkeeper"
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2}).connect()
    line = infra_error_line(caught.value, {"DATABASE_URL": url})
    assert line.startswith(f"history database unusable at DATABASE_URL=postgresql+psycopg2://beatkeeper:***@"
                           f"127.0.0.1:{port}/beatkeeper: ")
    assert "hunter2" not in line


def test_masking_keeps_everything_but_the_password():
    assert masked_redis_url("rediss://user:pw@host:6380/2") == "rediss://user:**@host:6380/2"
    assert masked_redis_url("redis://host:6379/0") == "redis://host:6379/0"
