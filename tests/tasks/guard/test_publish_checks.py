"""A countdown/ETA past half the visibility timeout is refused at the API, before any publish."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tasks.builtin import heartbeat
from tasks.guard.eta_limit import DelayTooLong, max_delay_s


def test_a_countdown_the_broker_would_redeliver_is_refused_before_publishing(app, redis_client):
    limit = max_delay_s(app)
    assert limit == app.conf.broker_transport_options["visibility_timeout"] / 2
    with pytest.raises(DelayTooLong) as refused:
        heartbeat.apply_async(countdown=limit + 1)
    assert refused.value.delay_s == limit + 1 and "use a schedule `at` entry" in str(refused.value)
    with pytest.raises(DelayTooLong):
        heartbeat.apply_async(eta=datetime.now(timezone.utc) + timedelta(seconds=limit + 60))
    assert redis_client.llen("default") == 0  # nothing reached the broker


def test_a_short_countdown_is_published(app, redis_client):
    heartbeat.apply_async(countdown=5)
    assert redis_client.llen("default") == 1
