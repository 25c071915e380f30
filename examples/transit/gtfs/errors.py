"""Every exception the GTFS reference pipeline raises, each carrying the data behind its message.

A bad feed is reported as one line naming the file, the line and the column, e.g.
``stop_times.txt line 7: arrival_time '25:61:00' is not a valid GTFS time``.
"""
from __future__ import annotations


class GtfsError(Exception):
    """Base of every error raised by ``examples.transit.gtfs``."""


class GtfsFeedError(GtfsError):
    """A feed that cannot be loaded; the previous data stays in place.

    ``file`` is None when the archive as a whole is at fault (not a zip); ``line`` is the
    physical line in the file (the header is line 1) or None when no single line is at fault.
    Without a line, ``reason`` completes a sentence about the file: ``stops.txt is missing``,
    ``stops.txt has no column 'stop_lat'``.
    """

    def __init__(self, reason: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None, value: str | None = None):
        self.reason = reason
        self.file = file
        self.line = line
        self.column = column
        self.value = value
        super().__init__(self._one_line())

    def _one_line(self) -> str:
        if self.file is None:
            return self.reason
        if self.line is None:
            return f"{self.file} {self.reason}"
        return f"{self.file} line {self.line}: {self.reason}"


class GtfsDownloadError(GtfsError):
    """The feed could not be fetched (network, timeout, HTTP error): worth retrying later."""

    def __init__(self, url: str, reason: str, *, status: int | None = None):
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"GET {url} failed: {reason}")


class GtfsStateError(GtfsError):
    """A step was run out of order (refresh before any sync, export of stale derived data)."""

    def __init__(self, reason: str, *, hint: str):
        self.reason = reason
        self.hint = hint
        super().__init__(f"{reason}: {hint}")


class GtfsPublishError(GtfsError):
    """The export could not be published; the previously published version stays in place."""

    def __init__(self, target: str, reason: str, *, status: int | None = None):
        self.target = target
        self.reason = reason
        self.status = status
        super().__init__(f"publish to {target} failed: {reason}")
