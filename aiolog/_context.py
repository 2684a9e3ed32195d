"""Per-task context: fields bound with ``bind()`` that every record logged afterwards carries.

The fields live in one ``ContextVar`` holding a dict that is never mutated, only replaced: a
task created after ``bind()`` inherits the dict as it was (asyncio copies the context into each
new task), a thread starts with its own empty context, and ``run_in_executor`` /
``asyncio.to_thread`` run in a copy of the caller's. Records are formatted in ``emit()`` on the
caller, so reading the variable there gives exactly the logging task's fields.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

_EMPTY: Final[Mapping[str, Any]] = {}
_fields: ContextVar[Mapping[str, Any]] = ContextVar("aiolog_context", default=_EMPTY)

# Attributes every LogRecord has: a bound field of the same name could never show in a text
# format (the record's own value wins), so bind() refuses them, as logging refuses such extras.
RECORD_ATTRIBUTES: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "taskName"}


def _check(fields: Mapping[str, Any]) -> None:
    clash = sorted(RECORD_ATTRIBUTES.intersection(fields))
    if clash:
        raise ValueError(f"cannot bind {', '.join(map(repr, clash))}: "
                         "LogRecord attributes of that name would hide them")


def bind(**fields: Any) -> None:
    """Add fields to every record logged from now on in this task (and tasks it creates)."""
    _check(fields)
    _fields.set({**_fields.get(), **fields})


def unbind(*names: str) -> None:
    """Remove these fields from the current context; names that are not bound are ignored."""
    current = _fields.get()
    if any(name in current for name in names):
        _fields.set({k: v for k, v in current.items() if k not in names})


def clear_context() -> None:
    """Remove every field bound in the current context."""
    _fields.set(_EMPTY)


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Bind fields for the ``with`` block only; the fields bound before are back after it."""
    _check(fields)
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def get_context() -> dict[str, Any]:
    """The fields a record logged here and now would carry (aiolog's and structlog's)."""
    return dict(current())


def current() -> Mapping[str, Any]:
    """The bound fields, read-only; structlog's ``bind_contextvars`` fields included.

    aiolog's own fields win over structlog's of the same name. The structlog lookup costs
    nothing unless the application imported ``structlog.contextvars``.
    """
    own = _fields.get()
    structlog_vars = sys.modules.get("structlog.contextvars")
    if structlog_vars is None:
        return own
    theirs = _structlog_fields(structlog_vars)
    if not theirs:
        return own
    return {**theirs, **own} if own else theirs


def _structlog_fields(module: Any) -> dict[str, Any]:
    # structlog keeps one ContextVar per key in _CONTEXT_VARS (unset ones hold Ellipsis); reading
    # them directly is much cheaper than its get_contextvars(), which copies the whole context.
    variables = getattr(module, "_CONTEXT_VARS", None)
    if not isinstance(variables, dict):
        fields: dict[str, Any] = module.get_contextvars()
        return fields
    if not variables:
        return {}
    prefix = len(getattr(module, "STRUCTLOG_KEY_PREFIX", "structlog_"))
    found = {}
    # A copy taken in one step: another thread may bind a new key (grow the dict) meanwhile.
    for key, var in tuple(variables.items()):
        value = var.get(Ellipsis)
        if value is not Ellipsis:
            found[key[prefix:]] = value
    return found


def trace_ids() -> tuple[str, str] | None:
    """The current OpenTelemetry span's trace and span id in lower-case hex, if it records.

    Read from the current span directly (not from a global record factory) and only when the
    application imported OpenTelemetry: without it this costs one dict lookup.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return None
        ids = span.get_span_context()
        return format(ids.trace_id, "032x"), format(ids.span_id, "016x")
    except Exception:  # a broken tracer must not cost the record
        return None


def add_trace_ids(record: logging.LogRecord) -> None:
    """Put ``trace_id`` and ``span_id`` on the record, unless it carries them already."""
    if "trace_id" in record.__dict__:
        return
    ids = trace_ids()
    if ids is not None:
        record.trace_id, record.span_id = ids


class ContextFilter(logging.Filter):
    """Copy the bound context and trace ids onto each record, for formatters other than aiolog's.

    aiolog's formatters read the context themselves; this filter serves a stdlib handler or a
    third-party formatter that only sees record attributes. A field the record already has
    (from ``extra=``) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__
        for key, value in current().items():
            attributes.setdefault(key, value)
        add_trace_ids(record)
        return True
