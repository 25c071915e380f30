"""Exclusion primitives, usable from any process and free of Celery: the fenced Redis lock with
its holder record and renewal, fencing tokens a resource checks, and the Postgres advisory lock
for sweeps over database rows."""
