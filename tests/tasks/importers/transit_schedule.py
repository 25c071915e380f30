"""The transit brief's schedule (seed 004, "Current Schedule"), copied verbatim below the
marker: ``beatkeeper import`` must read it as its author wrote it."""
# --- verbatim from /work/shared/seeds/004_367cc9e2b2cc8da3.txt ---
# app/celerybeat_schedule.py
from celery.schedules import crontab
import pytz

SYDNEY_TZ = pytz.timezone('Australia/Sydney')

CELERYBEAT_SCHEDULE = {
    # GTFS Static Sync (daily at 3am Sydney time)
    'gtfs-static-sync': {
        'task': 'app.workers.gtfs_static_sync.run',
        'schedule': crontab(hour=3, minute=0),  # ⚠️ Does this handle DST correctly?
        'options': {'expires': 7200},            # Expire if not run within 2h
    },

    # GTFS-RT Polling (every 15s, adaptive logic inside task)
    'gtfs-rt-poll': {
        'task': 'app.workers.gtfs_rt_poller.poll_gtfs_rt_feeds',
        'schedule': 15.0,  # seconds
        'options': {'expires': 30},  # Expire if not run within 30s
    },

    # Alert Matching (every 2 min during peak, every 5 min off-peak)
    'alert-matcher-peak': {
        'task': 'app.workers.alert_matcher.match_delays_to_favorites',
        'schedule': crontab(minute='*/2', hour='7-9,17-19'),  # Peak hours
    },
    'alert-matcher-offpeak': {
        'task': 'app.workers.alert_matcher.match_delays_to_favorites',
        'schedule': crontab(minute='*/5', hour='0-6,10-16,20-23'),  # Off-peak
    },

    # Cost Monitoring (hourly)
    'cost-check': {
        'task': 'app.workers.cost_monitor.check_cost_limits',
        'schedule': crontab(minute=10),  # Every hour at :10
    },

    # Usage Rollup (hourly)
    'usage-rollup': {
        'task': 'app.workers.usage.rollup_usage_hourly',
        'schedule': crontab(minute=5),  # Every hour at :05
    },

    # Storage Cleanup (weekly, Sunday 2am)
    'storage-cleanup': {
        'task': 'app.workers.cleanup.cleanup_old_gtfs_files',
        'schedule': crontab(hour=2, minute=0, day_of_week=0),
    },

    # MV Refresh (daily at 3:30am, after GTFS sync completes)
    'refresh-materialized-views': {
        'task': 'app.workers.db_maintenance.refresh_mvs',
        'schedule': crontab(hour=3, minute=30),
    },
}
