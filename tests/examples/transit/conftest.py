"""The GTFS pipeline tests' fixtures (tests/tasks/pipelines/conftest.py): one definition for both."""
from tests.tasks.pipelines.conftest import (fast_retries, feed, feed_server, gtfs_env, pipeline_store,  # noqa: F401
                                      put_receiver, retry_policy)
from tests.monitoring.databases import app_history, sqlite_url  # noqa: F401
