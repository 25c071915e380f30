"""The reference schedule of tests/schedules/test_config_formats.py, as Python."""

SCHEDULE = {
    "gtfs-rt-poll": {
        "task": "etl.poll",
        "every": 30,
        "phase": "5s",
        "expires": 25,
        "queue": "realtime",
        "kwargs": {"feed": "sydney-trains", "limit": 500},
        "overlap": "skip",
        "lock_ttl": "1m",
        "lock_key": ["feed"],
        "max_runtime": "25s",
    },
    "nightly-report": {
        "task": "etl.report",
        "cron": "30  2 * * *",
        "timezone": "Australia/Sydney",
        "dst": {"gap": "skip", "repeat": "first"},
        "args": ["daily", 7],
        "expected_runtime": "5m",
        "catchup": "latest",
        "catchup_window": "6h",
    },
    "xmas-notice": {
        "task": "etl.report",
        "at": "2026-12-24T18:00:00",
        "timezone": "Europe/London",
        "enabled": False,
        "description": "one-off reminder",
    },
    "peak-poll": {
        "task": "etl.poll",
        "windows": [
            {"hours": "7-9,17-19", "days": "mon-fri", "every": "2m"},
            {"every": 900},
        ],
        "timezone": "Europe/London",
        "max_runs_per_hour": 200,
        "catchup": "all",
        "catchup_max": 3,
        "time_limit": "1m30s",
    },
}
