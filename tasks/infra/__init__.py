"""Plumbing every process shares (worker, beat, monitor, CLI): beatkeeper's Redis client and its
TLS options, and infrastructure errors (an unreachable Redis or database, a bad URL, a task
module that cannot be imported) as one line."""
