"""Dynamic entries: schedule entries an application adds, replaces and removes at runtime.

Runs in the application's own process (and the ``beatkeeper entries`` command): ``entries`` writes
them into beat's store through the same validation as the schedule file; ``specs`` reads them
back for ``plan``, ``status`` and the monitor. Beat's side (pick-up, one-off removal) is
``tasks.beat.dynamic``.
"""
from tasks.dynamic.entries import DynamicEntries, EntryRefused

__all__ = ["DynamicEntries", "EntryRefused"]
