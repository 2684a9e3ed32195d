"""The fast formatter: byte-identical to ``logging.Formatter``, cheaper per record."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

# Only converters that map equal whole seconds to equal time tuples may share a cached string.
_CACHEABLE_CONVERTERS: Final = (time.localtime, time.gmtime)


class FastFormatter(logging.Formatter):
    """A ``logging.Formatter`` that does per second what the stdlib does per record.

    ``strftime`` is a third of the stdlib's formatting cost, yet a busy service logs thousands of
    records within one second: the date is formatted once per second, and the milliseconds are
    added per record exactly as ``logging.Formatter.formatTime`` adds them. Records without an
    exception or stack take a path with the stdlib's steps and none of its repeated lookups.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare()

    def _prepare(self) -> None:
        """Work out once what ``format()`` would otherwise ask every record."""
        style = self._style
        self._uses_time = style.usesTime()
        # The exact stdlib "%" style without defaults is just ``fmt % record.__dict__``.
        self._percent_fmt = (style._fmt if type(style) is logging.PercentStyle
                             and not getattr(style, "_defaults", None) else None)
        self._cached_second = -1
        self._cached_datefmt: str | None = None
        self._cached_date = ""
        self._cached_msecs = -1.0
        self._cached_time = ""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        if self._uses_time:
            record.asctime = self.formatTime(record, self.datefmt)
        if self._percent_fmt is not None:
            try:
                return self._percent_fmt % record.__dict__
            except KeyError:
                pass  # the stdlib's own path raises its ValueError for the missing field
        return self.formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        converter = self.converter
        if converter is not time.localtime and converter is not time.gmtime and (
                getattr(converter, "__func__", None) not in _CACHEABLE_CONVERTERS):
            return super().formatTime(record, datefmt)
        created = record.created
        second = int(created)
        if second != self._cached_second or datefmt != self._cached_datefmt:
            pattern = datefmt or self.default_time_format
            self._cached_date = time.strftime(pattern, converter(created))
            self._cached_second = second
            self._cached_datefmt = datefmt
            self._cached_msecs = -1.0
        if datefmt or not self.default_msec_format:
            return self._cached_date
        msecs = record.msecs
        if msecs != self._cached_msecs:  # records logged within one millisecond share it
            self._cached_time = self.default_msec_format % (self._cached_date, msecs)
            self._cached_msecs = msecs
        return self._cached_time


def fast_equivalent(formatter: logging.Formatter | None) -> logging.Formatter:
    """Return a formatter with the same output, swapping a plain stdlib one for ours.

    Subclasses are kept: they may override any method, so only the exact stdlib class is known
    to be safe to replace.
    """
    if formatter is None:
        return FastFormatter()
    if type(formatter) is not logging.Formatter:
        return formatter
    fast = FastFormatter.__new__(FastFormatter)
    fast.__dict__.update(formatter.__dict__)  # fmt, style, datefmt and any per-instance overrides
    fast._prepare()
    return fast
