"""Bringing schedules from Celery into beatkeeper: a ``beat_schedule`` dict
(:mod:`tasks.importers.celery_entries`), django-celery-beat's tables
(:mod:`tasks.importers.django_beat`), and what will behave differently afterwards
(:mod:`tasks.importers.side_by_side`). Used by ``beatkeeper import`` and by beat's warning
about an ``app.conf.beat_schedule`` it ignores (:mod:`tasks.importers.ignored`)."""
