"""The fast formatter: byte-identical to ``logging.Formatter``, cheaper per record."""

from __future__ import annotations

import difflib
import logging
import re
import string
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from . import _context

# What a text format shows for a field neither the record nor the bound context has: a format
# naming a context field must work in code paths that never bound it.
UNBOUND: Final = "-"

# Only converters that map equal whole seconds to equal time tuples may share a cached string.
_CACHEABLE_CONVERTERS: Final = (time.localtime, time.gmtime)
_LogRecord: Final = logging.LogRecord


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
        defaults = getattr(style, "_defaults", None) or {}
        check_fields(style, defaults)
        # Fields declared with defaults=: a value bound in the context wins over the default.
        self._declared = frozenset(defaults)
        self._uses_time = style.usesTime()
        self._render = (_compile_percent(style._fmt) if type(style) is logging.PercentStyle
                        and not getattr(style, "_defaults", None) else None)
        # Each cache is one tuple, replaced whole: threads formatting at once (emit() takes no
        # lock) see an old entry or a new one, never half of each.
        self._date_cache: tuple[tuple[int, str | None], str] = ((-1, None), "")
        self._time_cache: tuple[tuple[int, str | None], float, str] = ((-1, None), -1.0, "")
        self._time_cached = type(self).formatTime is FastFormatter.formatTime

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        render = self._render
        if render is not None:
            if type(record) is _LogRecord:  # LogRecord.getMessage, without the call
                msg = record.msg
                message = msg if type(msg) is str else str(msg)
                if record.args:
                    message = message % record.args
            else:  # a record class of someone's factory may have its own getMessage
                message = record.getMessage()
            asctime = ""
            if self._uses_time:
                # formatTime's cache of the last millisecond, read here when formatTime is ours.
                cached = self._time_cache
                if (self._time_cached and cached[1] == record.msecs
                        and cached[0] == (int(record.created), self.datefmt)):
                    asctime = cached[2]
                else:
                    asctime = self.formatTime(record, self.datefmt)
            try:
                return render(record.__dict__, message, asctime)
            except KeyError:
                pass  # a field the record lacks: formatMessage() looks it up in the context
        record.message = record.getMessage()
        if self._uses_time:
            record.asctime = self.formatTime(record, self.datefmt)
        return self.formatMessage(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        """As the stdlib does, but a field the record lacks comes from the bound context.

        A field declared with ``defaults=`` shows its default when nothing is bound; one
        declared nowhere and bound nowhere shows as ``UNBOUND``, and is reported once.
        """
        style = self._style
        if self._declared:
            bound = _context.current()
            if bound and not self._declared.isdisjoint(bound):
                defaults = style._defaults  # type: ignore[attr-defined]
                return self._substitute(_Fields({**defaults, **bound, **record.__dict__}))
        try:
            return super().formatMessage(record)
        except (KeyError, ValueError) as error:
            if not isinstance(error, KeyError) and not isinstance(error.__context__, KeyError):
                raise
        return self._substitute(
            _Fields({**(getattr(style, "_defaults", None) or {}), **record.__dict__}))

    def _substitute(self, values: _Fields) -> str:
        style = self._style
        if isinstance(style, logging.StringTemplateStyle):
            return style._tpl.substitute(values)
        if isinstance(style, logging.StrFormatStyle):
            return style._fmt.format_map(values)
        return style._fmt % values

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        converter = self.converter
        if converter is not time.localtime and converter is not time.gmtime and (
                getattr(converter, "__func__", None) not in _CACHEABLE_CONVERTERS):
            return super().formatTime(record, datefmt)
        created = record.created
        key = (int(created), datefmt)
        date = self._date_cache
        if date[0] != key:
            date = (key, time.strftime(datefmt or self.default_time_format, converter(created)))
            self._date_cache = date
        if datefmt or not self.default_msec_format:
            return date[1]
        msecs = record.msecs
        cached = self._time_cache
        if cached[0] == key and cached[1] == msecs:  # records logged within one millisecond
            return cached[2]
        text = self.default_msec_format % (date[1], msecs)
        self._time_cache = (key, msecs, text)
        return text


class _Fields(dict[str, Any]):
    """A record's fields; one it lacks is looked up in the bound context, else ``UNBOUND``."""

    def __missing__(self, key: str) -> Any:
        value = _context.current().get(key, _MISSING)
        if value is _MISSING:
            if key not in ("trace_id", "span_id"):  # absent outside a span: not a mistake
                _report_unbound(key)
            return UNBOUND
        return value


# Fields already reported as bound nowhere: once per name and process, not once per record.
_reported: Final[set[str]] = set()
_MISSING: Final = object()


def _report_unbound(name: str) -> None:
    if name in _reported:
        return
    _reported.add(name)
    stream = sys.stderr
    if stream is not None and logging.raiseExceptions:
        try:
            stream.write(
                f"--- aiolog: format field {name!r} is in no record, no bound context and no "
                f"defaults=; written as {UNBOUND!r}. If it is a context field, declare it: "
                f"Formatter(fmt, defaults={{{name!r}: {UNBOUND!r}}}) or "
                f"configure(defaults={{{name!r}: {UNBOUND!r}}}); else fix the format ---\n")
        except Exception:
            pass


def format_fields(style: object) -> list[str]:
    """The field names a ``logging`` style's format names, in order."""
    fmt: str = getattr(style, "_fmt", "")
    if isinstance(style, logging.StrFormatStyle):
        names = []
        for _, field, _, _ in string.Formatter().parse(fmt):
            if field:
                names.append(re.split(r"[.\[]", field, maxsplit=1)[0])
        return names
    if isinstance(style, logging.StringTemplateStyle):
        return [m["named"] or m["braced"] for m in string.Template.pattern.finditer(fmt)
                if m["named"] or m["braced"]]
    return re.findall(r"%\((\w+)\)", fmt)


def check_fields(style: object, defaults: object = ()) -> None:
    """Refuse a format field that is a near miss of a ``LogRecord`` attribute: a typo.

    Any other unknown field may be a context field (bound with ``aiolog.bind()``, or put on
    the record by a filter or ``extra=``), so it is accepted here; declare it with
    ``defaults=`` to give it a value when nothing provides it.
    """
    known = _context.RECORD_ATTRIBUTES
    for name in format_fields(style):
        if name in known or name in defaults:  # type: ignore[operator]
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            raise ValueError(
                f"format field {name!r} is not a LogRecord attribute: did you mean "
                f"{close[0]!r}? (a field of your own of that name: declare it with "
                f"defaults={{{name!r}: ...}})")


# A "%%" or one "%(name)spec" field, as logging.PercentStyle accepts them.
_TOKEN = re.compile(r"%%|%\((\w+)\)([#0+ -]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa])")


def _compile_percent(fmt: str) -> Callable[[dict[str, Any], str, str], str] | None:
    """Turn a "%(name)s" format into a function of (record dict, message, asctime).

    ``fmt % record.__dict__`` needs ``message`` and ``asctime`` stored on the record first, and
    growing each record's dict by two keys costs as much as the rest of the formatting. Fields
    passed by position cost neither. None when the format holds anything else we'd have to
    interpret (``*`` widths, stray ``%``): the stdlib path handles those.
    """
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match[1] is None:
            return "%%"
        names.append(match[1])
        return "%" + match[2]

    if "%" in _TOKEN.sub("", fmt):
        return None
    template = _TOKEN.sub(positional, fmt)
    values = "".join("message, " if name == "message" else "asctime, " if name == "asctime"
                     else f"fields[{name!r}], " for name in names)
    # Generated once per formatter, from names that matched \w+ only.
    render: Callable[[dict[str, Any], str, str], str] = eval(
        f"lambda fields, message, asctime: {template!r} % ({values})")
    return render


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
