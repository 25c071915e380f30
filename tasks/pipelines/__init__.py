"""Pipelines: an ordered list of steps (Celery tasks) run as one chain under one run id, on the
workers; started, resumed and listed from the CLI and the dashboard. Knows nothing of any one
pipeline (the GTFS example defines its own in ``examples/``)."""
