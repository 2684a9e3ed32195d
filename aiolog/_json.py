"""The JSON formatter: one JSON object per record, always on exactly one line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from itertools import islice as _islice
from typing import Any, Final, Literal

from . import _context
from ._context import RECORD_ATTRIBUTES

try:
    import orjson
except ImportError:  # the optional "json" extra is not installed: stdlib json does the work
    orjson = None  # type: ignore[assignment]

Encoder = Literal["auto", "orjson", "json"]
DEFAULT_FIELDS: Final = ("time", "level", "logger", "message")

# Output keys that read something other than the record attribute of the same name.
_ALIASES: Final[Mapping[str, str]] = {"level": "levelname", "logger": "name"}
# Record attributes never shown as extra fields (python-json-logger's RESERVED_ATTRS, plus the
# trace ids, which have their own keys).
RESERVED_ATTRS: Final = RECORD_ATTRIBUTES | {"trace_id", "span_id"}
# The attributes LogRecord.__init__ sets (taskName too on Python 3.12+), and how many.
_INIT_NAMES: Final = frozenset(logging.LogRecord("n", logging.INFO, "p", 0, "m", None, None).__dict__)
_INIT_ATTRIBUTES: Final = len(_INIT_NAMES)
_FIELD_NAME: Final[Mapping[str, re.Pattern[str]]] = {
    "%": re.compile(r"%\((\w+)\)"),
    "{": re.compile(r"\{(\w+)"),
    "$": re.compile(r"\$\{?(\w+)"),
}
# orjson and the stdlib write every value alike except floats below 1e-4 ("0.00001" and "1e-7"
# where Python writes "1e-05" and "1e-07"). Such output is re-encoded by the stdlib, so both
# encoders give the same bytes. A string that merely looks like this costs a re-encode, no more.
_FLOAT_DIFFERS: Final = re.compile(rb"[:,\[]-?0\.0000|\de-\d(?!\d)")


def to_jsonable(value: Any) -> Any:
    """A JSON-encodable stand-in for a value JSON cannot hold; never raises.

    datetimes/dates/times as ISO 8601, UUIDs and Decimals as strings, dataclasses as objects,
    enums as their value, sets as arrays, bytes decoded as UTF-8 (undecodable bytes escaped),
    anything else as ``str()`` (or ``repr()``, or a placeholder naming its type).
    """
    try:
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, (set, frozenset)):
            return list(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "backslashreplace")
        return str(value)
    except Exception:
        pass
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object (aiolog: could not be converted)>"


def _sanitize(value: Any, default: Callable[[Any], Any], depth: int = 0,
              seen: frozenset[int] = frozenset()) -> Any:
    """A copy holding only what JSON can encode, for the values the fast encode refused.

    Non-finite floats become null (as orjson writes them), keys become strings, a cycle or a
    nesting deeper than 100 becomes a string saying so.
    """
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if depth > 100:
        return "<aiolog: nested too deeply>"
    if id(value) in seen:
        return "<aiolog: cycle>"
    inner = seen | {id(value)}
    if isinstance(value, Mapping):
        return {_key(k): _sanitize(v, default, depth + 1, inner) for k, v in list(value.items())}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v, default, depth + 1, inner) for v in value]
    try:
        converted = default(value)
    except Exception:
        converted = to_jsonable(value)
    if converted is value:  # a default that gives the object back would loop
        converted = to_jsonable(value)
    return _sanitize(converted, default, depth + 1, inner)


def _stdlib_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """Compact, non-ASCII kept, NaN refused (the caller turns it into null, as orjson does).

    ``JSONEncoder.encode`` builds a new C encoder on every call, a third of the cost of a
    short record; this one is built once. It keeps no markers: a cycle ends in RecursionError,
    which ``encode`` handles like any other refusal.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (e.g. PyPy): the pure-Python encoder
        encode: Callable[[Any], str] = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default).encode
        return encode
    c_encoder = make(None, default, json.encoder.encode_basestring, None, ":", ",",
                     False, False, False)

    def encode_once(data: Any) -> str:
        return "".join(c_encoder(data, 0))

    return encode_once


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)  # as the stdlib writes such keys: 1 -> "1", None -> "null"
    converted = to_jsonable(key)
    return converted if isinstance(converted, str) else json.dumps(converted, default=str)


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object on one line.

    Keys, in order: the chosen fields (default ``time``, ``level``, ``logger``, ``message``),
    ``static_fields``, the bound context (``aiolog.bind``), every ``extra=`` field,
    ``trace_id``/``span_id`` when an OpenTelemetry span records, then ``exc`` and ``stack``
    (tracebacks as strings, so a record never spans two lines). The chosen fields win over a
    context or extra field of the same name.

    Args:
        fmt: the fields to show: a sequence of names, or a format string whose ``%(name)s``
            (``{name}``, ``$name`` by ``style``) fields are taken, as python-json-logger does.
            Names: ``time``, ``level``, ``logger``, ``message`` or any LogRecord attribute
            (``asctime``, ``levelname``, ``name``, ``process``, ``taskName``...). A field the
            record lacks is ``null``.
        datefmt: a ``strftime`` format for ``time``; by default ISO 8601 with milliseconds
            and the UTC offset, e.g. ``2026-11-25T15:28:11.042+01:00``.
        style: the style of a ``fmt`` string.
        rename_fields: output key for a field, e.g. ``{"time": "@timestamp"}``.
        static_fields: fields added to every line, e.g. ``{"service": "api"}``.
        reserved_attrs: record attributes never shown as extra fields (default: the
            attributes every LogRecord has).
        json_default: turns a value JSON cannot hold into one it can (default:
            ``to_jsonable``).
        utc: write ``time`` in UTC (``+00:00``) rather than local time.
        encoder: ``"orjson"``, ``"json"`` (stdlib) or ``"auto"`` (orjson when installed).
            Both give the same output.
        context: include the bound context.
        trace: include OpenTelemetry trace and span ids.
        access_fields: for uvicorn's and gunicorn's access records, add the request's
            ``client``, ``method``, ``path``, ``protocol``, ``status`` (and ``duration`` in
            seconds, which only gunicorn's record carries) as fields.
    """

    def __init__(self, fmt: str | Sequence[str] | None = None, datefmt: str | None = None,
                 style: Literal["%", "{", "$"] = "%", validate: bool = True, *,
                 rename_fields: Mapping[str, str] | None = None,
                 static_fields: Mapping[str, Any] | None = None,
                 reserved_attrs: Iterable[str] | None = None,
                 json_default: Callable[[Any], Any] | None = None,
                 utc: bool = False, encoder: Encoder = "auto",
                 context: bool = True, trace: bool = True, access_fields: bool = True) -> None:
        if style not in _FIELD_NAME:
            raise ValueError(f"style must be one of '%', '{{', '$', not {style!r}")
        if fmt is None:
            names = list(DEFAULT_FIELDS)
        elif isinstance(fmt, str):
            names = _FIELD_NAME[style].findall(fmt)
            if validate and not names:
                raise ValueError(f"no fields found in {fmt!r} (style {style!r})")
        elif isinstance(fmt, Sequence) and all(isinstance(n, str) for n in fmt):
            names = list(fmt)
        else:
            raise TypeError(f"fmt must be a format string or a sequence of names, not {fmt!r}")
        super().__init__(None, datefmt)
        self.rename_fields = dict(rename_fields or {})
        if not all(isinstance(k, str) and isinstance(v, str) and v
                   for k, v in self.rename_fields.items()):
            raise TypeError(f"rename_fields must map names to non-empty strings, "
                            f"not {rename_fields!r}")
        self.static_fields = dict(static_fields or {})
        if not all(isinstance(k, str) for k in self.static_fields):
            raise TypeError(f"static_fields keys must be strings, not {static_fields!r}")
        if encoder not in ("auto", "orjson", "json"):
            raise ValueError(f"encoder must be 'auto', 'orjson' or 'json', not {encoder!r}")
        if encoder == "orjson" and orjson is None:
            raise ImportError("encoder='orjson' needs orjson: pip install 'aiolog-safe[json]'")
        if json_default is not None and not callable(json_default):
            raise TypeError(f"json_default must be callable, not {json_default!r}")
        self.fields = tuple(dict.fromkeys(names))
        self.reserved_attrs = frozenset(RESERVED_ATTRS if reserved_attrs is None
                                        else reserved_attrs) | {"trace_id", "span_id"}
        self.json_default = json_default or to_jsonable
        self.utc = utc
        self.encoder: Literal["orjson", "json"] = (
            "json" if encoder == "json" or orjson is None else "orjson")
        self.context = context
        self.trace = trace
        self.access_fields = access_fields
        self._stdlib = _stdlib_encoder(self.json_default)
        rename = self.rename_fields.get
        # (output key, how to read it) per chosen field, worked out once.
        self._plan = [(rename(name, name), name) for name in self.fields]
        self._exc_key, self._stack_key = rename("exc", "exc"), rename("stack", "stack")
        self._trace_key, self._span_key = rename("trace_id", "trace_id"), rename("span_id", "span_id")
        self._own_keys = frozenset(key for key, _ in self._plan)
        self._needs_message = "message" in self.fields
        self._needs_time = "time" in self.fields or "asctime" in self.fields
        self._base = _compile_base(self._plan)
        # Unless reserved_attrs lets some of LogRecord's own attributes through as fields.
        self._skip_init = self.reserved_attrs >= _INIT_NAMES
        self._static = {rename(k, k): v for k, v in self.static_fields.items()}
        self._static_free = {k: v for k, v in self._static.items() if k not in self._own_keys}
        self._clock: tuple[int, str, str] = (-1, "", "")
        self._last: tuple[int, float, str] = (-1, -1.0, "")
        # to_dict may read formatTime's cache itself only if formatTime is this class's.
        self._time_cached = type(self).formatTime is JsonFormatter.formatTime
        self._plans: _Plans | None = _Plans.build(self)
        self._ready = True

    def __setattr__(self, name: str, value: Any) -> None:
        # The line plans snapshot the options: an option set after construction (a public
        # attribute: datefmt, utc, context...) makes new ones.
        object.__setattr__(self, name, value)
        if name[0] != "_" and self.__dict__.get("_ready"):
            object.__setattr__(self, "_plans", _Plans.build(self))

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (without the newline)."""
        plans = self._plans
        if plans is not None:  # the common record: a plan writes the line, no dict, no encoder
            attributes = record.__dict__
            line = plans[len(attributes)](record, attributes)
            if line is not None:
                return line
        return self.encode(self.to_dict(record))

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """What ``format()`` writes, before encoding; override to add or change fields."""
        attributes = record.__dict__
        msg = record.msg
        if (self.rename_fields or isinstance(msg, dict)
                or (self.access_fields and record.name in _ACCESS_LOGGERS)):
            return self._to_dict_general(record)
        # The common record, the same dict as _to_dict_general builds (a test compares them),
        # written straight into the result: each source's keys land where the general path's
        # merged dict would put them, as a later source's value for an earlier key replaces the
        # value in place there too.
        message = ""
        if self._needs_message:
            if type(record) is _LogRecord:  # LogRecord.getMessage, without the call
                message = msg if type(msg) is str else str(msg)
                args = record.args
                if args:
                    message = message % args
            else:  # a record class of someone's factory may have its own getMessage
                message = record.getMessage()
        time = ""
        if self._needs_time:
            last = self._last  # formatTime's cache of the last millisecond, when it is ours
            if (self._time_cached and last[1] == record.msecs and last[0] == int(record.created)
                    and not self.datefmt):
                time = last[2]
            else:
                time = self.formatTime(record, self.datefmt)
        data = self._base(attributes, message, time)
        own = self._own_keys
        if self._static_free:
            data.update(self._static_free)
        if self.context:
            context = _own_context() if _STRUCTLOG not in _modules else _context.current()
            if context:
                if own.isdisjoint(context):
                    data.update(context)
                else:  # the chosen fields win over a context field of the same name
                    data.update({k: v for k, v in context.items() if k not in own})
        reserved = self.reserved_attrs
        # LogRecord.__init__ sets the same attributes in the same order on every record, and
        # extra= fields are set after it: only the keys past those can be extra fields.
        if not self._skip_init or len(attributes) < _INIT_ATTRIBUTES:
            for k, v in attributes.items():
                if k not in reserved and k not in own:
                    data[k] = v
        elif len(attributes) > _INIT_ATTRIBUTES:
            for k, v in _islice(attributes.items(), _INIT_ATTRIBUTES, None):
                if k not in reserved and k not in own:
                    data[k] = v
        return self._add_trace_and_exc(record, data)

    def _to_dict_general(self, record: logging.LogRecord) -> dict[str, Any]:
        """``to_dict`` for every record: renamed fields, a dict message, access records."""
        attributes = record.__dict__
        msg = record.msg
        from_msg: Mapping[str, Any] | None = msg if isinstance(msg, dict) else None
        if from_msg is not None:
            message = from_msg.get("message", "")
        else:
            message = record.getMessage() if self._needs_message else ""
        data = self._base(attributes, message,
                          self.formatTime(record, self.datefmt) if self._needs_time else "")
        # The other fields are gathered first and merged in one step: C-level dict operations
        # cost a fraction of a Python loop per field. Later sources win, as dict.update does.
        more: dict[str, Any] = {}
        if self.access_fields and record.name in _ACCESS_LOGGERS:
            more.update(access_fields(record))
        if self._static:
            more.update(self._static)
        if self.context:
            context = _context.current()
            if context:
                more.update(context)
        reserved = self.reserved_attrs
        keys = list(attributes)
        # LogRecord.__init__ sets the same attributes in the same order on every record, and
        # extra= fields are set after it: only the keys past those can be extra fields.
        for k in keys[_INIT_ATTRIBUTES:] if self._skip_init and len(keys) >= _INIT_ATTRIBUTES \
                else keys:
            if k not in reserved:
                more[k] = attributes[k]
        if from_msg is not None:
            more.update(from_msg)
            more.pop("message", None)  # it is the message field already
        if more:
            rename = self.rename_fields
            if rename:
                more = {rename.get(k, k): v for k, v in more.items()}
            own = self._own_keys
            if own.isdisjoint(more):
                data.update(more)
            else:  # the chosen fields win over a context or extra field of the same name
                data.update({k: v for k, v in more.items() if k not in own})
        return self._add_trace_and_exc(record, data)

    def _add_trace_and_exc(self, record: logging.LogRecord,
                           data: dict[str, Any]) -> dict[str, Any]:
        """The last keys of every record: trace and span ids, then exception and stack."""
        if self.trace:
            trace_id = record.__dict__.get("trace_id")
            if trace_id is not None:
                data[self._trace_key] = trace_id
                data[self._span_key] = record.__dict__.get("span_id")
            elif _OTEL_TRACE in _modules:
                ids = _context.trace_ids()
                if ids is not None:
                    data[self._trace_key], data[self._span_key] = ids
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = record.exc_text = self.formatException(record.exc_info)  # cached, as stdlib
        if exc_text and not exc_text.isspace():  # loguru sets "\n": its traceback is in the message
            data[self._exc_key] = exc_text
        if record.stack_info:
            data[self._stack_key] = self.formatStack(record.stack_info)
        return data

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 with milliseconds and UTC offset, the date part computed once a second."""
        if datefmt:
            return super().formatTime(record, datefmt)
        second, msecs = int(record.created), record.msecs
        last = self._last
        if last[0] == second and last[1] == msecs:  # records logged within one millisecond
            return last[2]
        clock = self._clock
        if clock[0] != second:
            if self.utc:
                moment = dt.datetime.fromtimestamp(second, dt.timezone.utc)
            else:
                moment = dt.datetime.fromtimestamp(second).astimezone()
            text = moment.isoformat(timespec="seconds")
            clock = (second, text[:19], text[19:])  # "YYYY-MM-DDTHH:MM:SS", "+01:00"
            self._clock = clock  # one tuple, replaced whole: safe for threads formatting at once
        text = "%s.%03d%s" % (clock[1], msecs, clock[2])
        self._last = (second, msecs, text)
        return text

    def encode(self, data: Mapping[str, Any]) -> str:
        """Encode as compact JSON; values JSON cannot hold are converted, never raised.

        Raises only if even the converted copy cannot be encoded (a broken ``json_default``).
        """
        if self.encoder == "orjson":
            try:
                out = orjson.dumps(data, default=self.json_default, option=_ORJSON_OPTIONS)
            except Exception:  # a big int, a non-str key, NaN...: the stdlib path below decides
                pass
            else:
                # Two substring tests (fast) spare almost every line the regex (not fast).
                if (b"0.0000" not in out and b"e-" not in out) or not _FLOAT_DIFFERS.search(out):
                    return out.decode()
        try:
            text: str = self._stdlib(data)
            return text
        except Exception:  # NaN, a cycle, an odd key: encode a sanitized copy instead
            text = self._stdlib(_sanitize(data, self.json_default))
            return text

    def unformattable(self, record: logging.LogRecord, message: str) -> str:
        """A JSON line for a record that could not be formatted: what can be shown of it."""
        data = {"time": _safe(lambda: self.formatTime(record)), "level": _safe(
            lambda: record.levelname), "logger": _safe(lambda: record.name), "message": message}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


_SIMPLE: Final = frozenset({str, int, float, bool, type(None)})
_encode_str: Final[Callable[[str], str]] = json.encoder.encode_basestring


def _scalar(value: Any) -> str | None:
    """A value other than str and int as JSON, if it is a float, bool or None; else None."""
    kind = type(value)
    if kind is float:
        return float.__repr__(value) if math.isfinite(value) else "null"
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None


def _simple(value: Any) -> str | None:
    """A str, int, float, bool or None as JSON, as the stdlib encoder writes it; else None.

    An int too long for ``str()`` raises ``ValueError``, as the encoder does.
    """
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is int:
        return int.__repr__(value)
    return _scalar(value)


class _Known(dict[str, str]):
    """str -> its JSON, for level and logger names; bounded."""

    def __missing__(self, text: str) -> str:
        if len(self) >= 1024:
            self.clear()
        encoded = self[text] = _encode_str(text)
        return encoded


_KNOWN: Final = _Known()


class _Plans(dict[int, Callable[[logging.LogRecord, dict[str, Any]], "str | None"]]):
    """The line for the common record, written without a dict or an encoder.

    ``JsonFormatter.format`` looks a plan up by the number of record attributes; a plan is
    generated for one sequence of ``extra=`` keys (the attributes past LogRecord's own) and
    checks that the record has them, else it finds or makes the plan for the record's keys.
    A plan writes keys as constants and each value by its exact type (str, int, float, bool,
    None) as the stdlib encoder writes it (orjson writes the same, a test compares them). The
    bound context's fields are written as one piece of JSON, made once per context dict (the
    dict is replaced, never changed: see ``_context``). Any other value, a context field that
    an extra or static field of the same name would move or override, an exception or stack,
    trace ids, a dict message or a record of another class returns None:
    ``encode(to_dict(record))`` writes that line.
    """

    _MAX: Final = 256

    def __init__(self, formatter: JsonFormatter) -> None:
        super().__init__()
        self.formatter = formatter
        self.by_keys: dict[tuple[str, ...], Callable[..., str | None]] = {}
        self.clock: list[tuple[float, float, float, str]] = [(0.0, 0.0, -1.0, "")]
        # id(context dict) -> (the dict, its fields' JSON, their keys). The dict is kept: its
        # id cannot be reused by another while its entry is here.
        self.contexts: dict[int, tuple[Mapping[str, Any], str, frozenset[str]]] = {}
        ours = JsonFormatter
        cls = type(formatter)
        self.usable = (not formatter.rename_fields and formatter._skip_init
                       and cls.to_dict is ours.to_dict and cls.encode is ours.encode
                       and cls.formatTime is ours.formatTime
                       and not {"to_dict", "encode", "formatTime"} & formatter.__dict__.keys()
                       and all(type(v) in _SIMPLE for v in formatter._static_free.values()))

    @classmethod
    def build(cls, formatter: JsonFormatter) -> _Plans | None:
        plans = cls(formatter)
        return plans if plans.usable else None

    def __missing__(self, size: int) -> Callable[[logging.LogRecord, dict[str, Any]], str | None]:
        return self.replan

    def replan(self, record: logging.LogRecord, attributes: dict[str, Any]) -> str | None:
        """Find or make the plan for this record's extra keys, keep it for its size, use it."""
        size = len(attributes)
        if size < _INIT_ATTRIBUTES:
            return None
        keys = tuple(attributes)[_INIT_ATTRIBUTES:]
        if not all(type(k) is str for k in keys):
            return None
        plan = self.by_keys.get(keys)
        if plan is None:
            if len(self.by_keys) >= self._MAX:  # generated keys: stay bounded
                self.by_keys.clear()
                self.clear()
            plan = self.by_keys[keys] = self._compile(keys)
        self[size] = plan
        return plan(record, attributes)

    def time(self, record: logging.LogRecord) -> str:
        """formatTime's text as JSON, kept for the rest of its millisecond."""
        formatter = self.formatter
        text = _encode_str(formatter.formatTime(record, formatter.datefmt))
        second = int(record.created)
        if second >= 1 and not formatter.datefmt:  # past 1: int() is floor()
            self.clock[0] = (float(second), float(second + 1), record.msecs, text)
        return text

    def context(self, context: Mapping[str, Any]) -> tuple[Mapping[str, Any], str,
                                                           frozenset[str]] | None:
        """The bound fields' JSON, as to_dict writes them after the static fields, kept for
        this dict; None where a plan cannot write them (a value of another type, a field a
        static field of the same name would place)."""
        own, static = self.formatter._own_keys, self.formatter._static_free
        parts = []
        for key, value in context.items():
            if type(key) is not str or key in static:
                return None
            if key in own:  # the chosen fields win
                continue
            try:
                text = _simple(value)
            except ValueError:  # an int too long for str(): the general path says so
                return None
            if text is None:
                return None
            parts.append(f",{_encode_str(key)}:{text}")
        if len(self.contexts) >= self._MAX:
            self.contexts.clear()
        entry = self.contexts[id(context)] = (context, "".join(parts), frozenset(context))
        return entry

    @staticmethod
    def _context_source(extras: tuple[str, ...], *, first: bool) -> list[str]:
        """The plan's lines that find the context's JSON for ``{bound}``, or give up."""
        if first:  # no field before it for its leading comma to follow: the general path
            return ["    if context:", "        return None"]
        lines = ["    if context:",
                 # An entry keeps its dict alive, so no other dict can have its id meanwhile.
                 "        entry = contexts.get(id(context)) or plans.context(context)",
                 "        if entry is None:", "            return None"]
        if extras:  # an extra field of a bound field's name takes its place with its value
            lines += [f"        if not entry[2].isdisjoint({extras!r}):",
                      "            return None"]
        return lines + ["        bound = entry[1]", "    else:", "        bound = ''"]

    def _compile(self, keys: tuple[str, ...]) -> Callable[..., str | None]:
        formatter = self.formatter
        own, reserved = formatter._own_keys, formatter.reserved_attrs
        lines = ["def plan(record, attributes):"]
        if keys:  # the extra keys are the record's last ones, newest first
            checks = " or ".join(f"next(newest) != {k!r}" for k in reversed(keys))
            lines += ["    newest = reversed(attributes)",
                      f"    if {checks}:", "        return replan(record, attributes)"]
        lines += ["    if (type(record) is not LogRecord or record.exc_info or record.exc_text",
                  "            or record.stack_info):", "        return None"]
        if formatter.access_fields:
            lines += ["    if record.name in ACCESS:", "        return None"]
        if formatter.trace:
            lines += ["    if 'trace_id' in attributes or OTEL in modules:", "        return None"]
        if formatter.context:
            lines += ["    context = own_context() if STRUCTLOG not in modules else current()"]
            context_at = len(lines)  # what to do with it is inserted here, once the keys are known
        if formatter._needs_message:
            lines += ["    msg = record.msg", "    if type(msg) is not str:", "        return None",
                      "    args = record.args", "    message = msg % args if args else msg"]
        if formatter._needs_time:
            if formatter.datefmt:
                lines.append("    time = plans.time(record)")
            else:
                lines += ["    clock = plans.clock[0]",
                          "    if clock[2] == record.msecs and clock[0] <= record.created < clock[1]:",
                          "        time = clock[3]", "    else:", "        time = plans.time(record)"]
        lines.append("    try:")
        parts: list[str] = []
        values: dict[str, str | None] = {}  # output key -> expression of its JSON text

        def value(source: str) -> str:
            name = f"v{len(lines)}"
            lines.extend([f"        {name} = {source}",
                          f"        if type({name}) is str:", f"            {name} = encode_str({name})",
                          f"        elif type({name}) is not int:",
                          f"            {name} = scalar({name})",
                          f"            if {name} is None:", "                return None"])
            return name

        for key, name in formatter._plan:
            if name == "message":
                values[key] = "encode_str(message)"
            elif name in ("time", "asctime"):
                values[key] = "time"
            else:
                attribute = _ALIASES.get(name, name)
                if attribute in ("levelname", "name"):  # a handful of names: their JSON is kept
                    lines += [f"        {attribute} = record.{attribute}",
                              f"        {attribute} = known[{attribute}] if type({attribute}) is str"
                              f" else scalar({attribute})",
                              f"        if {attribute} is None:", "            return None"]
                    values[key] = attribute
                elif attribute in _INIT_NAMES and attribute.isidentifier():
                    values[key] = value(f"record.{attribute}")  # none missing: try/except
                else:
                    values[key] = value(f"attributes.get({attribute!r})")
        # Static fields, then the bound context, then extra fields: first position, last value,
        # the chosen fields win.
        static_free = formatter._static_free
        more: dict[str, str | None] = dict.fromkeys(static_free)
        for key in keys:
            if key not in reserved and key not in own:
                more[key] = value(f"attributes[{key!r}]")
        extras = tuple(key for key in more if key not in static_free)
        for key, expression in {**values, **more}.items():
            if expression is None:  # a static field's value, written once here
                text = _simple(static_free[key])
                parts.append(f"{_encode_str(key)}:{text}".replace("{", "{{").replace("}", "}}"))
            else:
                parts.append(_encode_str(key).replace("{", "{{").replace("}", "}}")
                             + f":{{{expression}}}")
        # The context's fields go between the static and the extra fields; {bound} brings their
        # leading commas. Keys and static values enter the source only through repr(), so any
        # string is safe.
        before, after = parts[:len(parts) - len(extras)], parts[len(parts) - len(extras):]
        bound = "{bound}" if before and formatter.context else ""
        line = "{{" + ",".join(before) + bound + "".join(
            ("," if before or i else "") + part for i, part in enumerate(after)) + "}}"
        lines.append(f"        return f{line!r}")
        lines += ["    except Exception:", "        return None"]
        if formatter.context:
            lines[context_at:context_at] = self._context_source(extras, first=not before)
        namespace: dict[str, Any] = {
            "replan": self.replan, "plans": self, "LogRecord": _LogRecord, "ACCESS": _ACCESS_LOGGERS,
            "OTEL": _OTEL_TRACE, "modules": _modules, "STRUCTLOG": _STRUCTLOG,
            "own_context": _own_context, "current": _context.current, "encode_str": _encode_str,
            "scalar": _scalar, "known": _KNOWN, "contexts": self.contexts}
        exec("\n".join(lines), namespace)
        plan: Callable[..., str | None] = namespace["plan"]
        return plan


def _compile_base(plan: list[tuple[str, str]]) -> Callable[[dict[str, Any], str, str],
                                                          dict[str, Any]]:
    """A function building the chosen fields' dict in one expression, from (key, field) pairs.

    Deciding per record and per field where each value comes from costs more than the rest of
    ``to_dict``; a dict display generated once per formatter decides nothing per record.
    """
    items = []
    for key, name in plan:
        if name == "message":
            value = "message"
        elif name in ("time", "asctime"):
            value = "time"
        else:
            value = f"attributes.get({_ALIASES.get(name, name)!r})"
        items.append(f"{key!r}: {value}")
    # Keys and attribute names enter the source only through repr(), so any string is safe.
    base: Callable[[dict[str, Any], str, str], dict[str, Any]] = eval(
        f"lambda attributes, message, time: {{{', '.join(items)}}}")
    return base


_OTEL_TRACE: Final = "opentelemetry.trace"
_LogRecord: Final = logging.LogRecord
_STRUCTLOG: Final = "structlog.contextvars"
# aiolog's own bound fields: what _context.current() returns unless structlog's are in use,
# read without its two function calls.
_own_context: Final = _context._fields.get
_modules: Final = sys.modules
_ACCESS_LOGGERS: Final = frozenset({"uvicorn.access", "gunicorn.access"})


def access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request's fields from a uvicorn or gunicorn access record's ``args``; {} if none.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with (client, method, path, HTTP version,
    status), when the response starts, so it has no duration. gunicorn logs its
    ``access_log_format`` with a dict of atoms: ``h`` client, ``m`` method, ``U`` path, ``q``
    query, ``H`` protocol, ``s`` status, ``D`` request time in microseconds.
    """
    args = record.args
    if isinstance(args, tuple) and len(args) == 5 and record.name == "uvicorn.access":
        client, method, path, version, status = args
        return {"client": client, "method": method, "path": path,
                "protocol": f"HTTP/{version}", "status": status}
    if isinstance(args, Mapping) and record.name == "gunicorn.access":
        fields: dict[str, Any] = {"client": args.get("h"), "method": args.get("m")}
        path, query = args.get("U"), args.get("q")
        fields["path"] = f"{path}?{query}" if path is not None and query else path
        fields["protocol"] = args.get("H")
        status = args.get("s")
        fields["status"] = int(status) if isinstance(status, str) and status.isdigit() else status
        micros = args.get("D")
        if isinstance(micros, int):
            fields["duration"] = micros / 1_000_000
        return fields
    return {}


def _safe(get: Callable[[], Any]) -> str:
    try:
        return str(get())
    except Exception:
        return "?"


_ORJSON_OPTIONS: Final = 0 if orjson is None else (
    # Our default formats these, so both encoders write them alike (e.g. naive datetimes).
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)

