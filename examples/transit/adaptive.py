"""The GTFS-RT poll's adaptive logic: beat sends it every 15 s; off-peak it fetches less often.

Peak (07-09 and 17-19 Sydney): every slot. By day: every 30 s. At night (00-04): every 90 s.
"""
from __future__ import annotations

PEAK_HOURS = frozenset({7, 8, 9, 17, 18, 19})
NIGHT_HOURS = frozenset(range(0, 5))
MIN_GAP_S = {"peak": 0.0, "day": 30.0, "night": 90.0}
SLOT_SLACK_S = 1.0  # a slot 15 s after the last is "30 s" when two slots make the gap


def poll_mode(local_hour: int) -> str:
    return "peak" if local_hour in PEAK_HOURS else "night" if local_hour in NIGHT_HOURS else "day"


def poll_due(mode: str, since_last_s: float | None) -> bool:
    """Whether this slot fetches: always at peak or after no poll; else once the mode's gap has passed."""
    return since_last_s is None or since_last_s + SLOT_SLACK_S >= MIN_GAP_S[mode]
