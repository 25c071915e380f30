"""The history database fixtures for every test under tests/monitoring (one Postgres per session)."""
from tests.monitoring.databases import (app_history, app_history_on, history_store, history_url,  # noqa: F401
                                        postgres_db_url, postgres_url, sqlite_url)
