"""The one backoff formula (schedules.backoff), as entry retries, pipeline steps and beat use it."""
from __future__ import annotations

import pytest

from schedules.backoff import retry_delay_s


def test_doubles_from_the_base_and_stops_at_the_cap():
    assert [retry_delay_s(n, base_s=1.0, max_s=10.0) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.parametrize(("jitter", "expected_s"), [(0.0, 4.0), (0.5, 6.0), (1.0, 8.0)])
def test_jitter_scales_into_half_to_all_of_the_wait(jitter, expected_s):
    assert retry_delay_s(3, base_s=1.0, max_s=600.0, jitter=jitter) == expected_s


def test_a_huge_retry_count_is_the_cap_not_an_overflow():
    assert retry_delay_s(10**6, base_s=30.0, max_s=600.0) == 600.0
    assert retry_delay_s(-1, base_s=30.0, max_s=600.0) == 30.0
