"""JsonFormatter's fast path for the common record builds exactly the general path's dict."""

from __future__ import annotations

import contextlib
import copy
import json
import datetime as dt
import decimal
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

import aiolog
from aiolog._json import JsonFormatter

# Names that clash on purpose: the chosen fields' keys and output keys, a reserved attribute.
NAMES = st.sampled_from(["time", "level", "logger", "message", "process", "order", "user",
                         "a", "b", "trace_id", "span_id", "status"])
VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats(allow_nan=False),
                   st.lists(st.integers(), max_size=2))
FIELD_LISTS = st.sampled_from([None, ["time", "level", "logger", "message", "process"],
                               ["message", "order", "thread"], "%(asctime)s %(message)s"])


def _exc_info() -> tuple[type[BaseException], BaseException, Any]:
    """A real exception's exc_info, traceback included."""
    try:
        raise ValueError("boom")
    except ValueError as error:
        return (ValueError, error, error.__traceback__)

@settings(max_examples=200, deadline=None)
@given(fields=FIELD_LISTS, extra=st.dictionaries(NAMES, VALUES, max_size=4),
       bound=st.dictionaries(NAMES, VALUES, max_size=3),
       static=st.dictionaries(NAMES, VALUES, max_size=3),
       trace=st.booleans(), exc=st.booleans(), reserved=st.booleans(),
       args=st.sampled_from([None, (1,), ("x", 2.5)]))
def test_the_fast_path_builds_the_general_paths_dict(
        fields: Any, extra: dict[str, Any], bound: dict[str, Any], static: dict[str, Any],
        trace: bool, exc: bool, reserved: bool, args: tuple[Any, ...] | None) -> None:
    """Same keys, same order, same values, whatever clashes between fields, context, extra,
    static fields and trace ids, with or without an exception and custom reserved_attrs."""
    formatter = JsonFormatter(fields, static_fields=static,
                              reserved_attrs={"msg", "args"} if reserved else None)
    extra = {k: v for k, v in extra.items() if k not in ("message", "process")}
    message = "m" + " %s" * len(args or ())
    exc_info = _exc_info() if exc else None
    record = logging.getLogger("app").makeRecord("app", logging.INFO, __file__, 1, message,
                                                 args, exc_info, extra=extra or None)
    if trace:
        record.trace_id, record.span_id = "t" * 32, "s" * 16
    context = {k: v for k, v in bound.items() if k not in aiolog._context.RECORD_ATTRIBUTES}
    with aiolog.context(**context):
        # Each on its own copy: formatting an exception caches its text on the record.
        fast = formatter.to_dict(copy.copy(record))
        general = formatter._to_dict_general(copy.copy(record))
    assert list(fast.items()) == list(general.items())


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")


KEYS = st.sampled_from(["time", "level", "message", "order", "user", "a-b", 'q"k', "é",
                        "trace_id", "taskName", "status"])
PLAIN = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**64, -(2**63) - 1, 10**30]),
    st.floats(), st.sampled_from([1e-5, 1.5e-7, -0.0, 1e16, 5e-324, float("nan"), float("-inf")]),
    st.text(alphabet=st.characters(), max_size=8),
    st.sampled_from(["\ud800", "a\x00\x1f\\\"\u2028", "0.00001 e-5", "{x}"]))
LEAVES = st.one_of(PLAIN, st.sampled_from([
    dt.datetime(2026, 1, 2, 3, 4, 5), decimal.Decimal("9.90"), BrokenStr(),
    type("S", (str,), {})("sub")]))
LINE_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=2)
                           | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=4)
EXTRA_VALUES = st.one_of(PLAIN, PLAIN, PLAIN, LINE_VALUES)
# Mostly the common record, so most examples take the fast line; the rest, the general path.
RARELY = st.sampled_from([False, False, False, True])
SIMPLE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4))


@settings(max_examples=400, deadline=None)
@given(fields=st.sampled_from([None, ["time", "level", "logger", "message", "process"],
                               ["message", "order", "lineno", "taskName"], "%(asctime)s %(message)s"]),
       extras=st.lists(st.dictionaries(KEYS, EXTRA_VALUES, max_size=4), min_size=1, max_size=3),
       message=st.text(max_size=8), args=st.sampled_from([None, (1,), ("x", 2.5)]),
       bound=st.one_of(st.just({}), st.dictionaries(
           st.sampled_from(["order", "user", "level", "status", "a-b", 'q"k']),
           st.one_of(SIMPLE, SIMPLE, SIMPLE, st.sampled_from([10**30, 10**5000, [1], "\ud800"])),
           max_size=3)),
       shared_context=st.booleans(),
       static=st.one_of(st.dictionaries(KEYS, SIMPLE, max_size=2),
                        st.just({"tags": [1.5e-7]})),
       rename=st.sampled_from([{}, {}, {}, {"time": "@timestamp", "order": "o"}]),
       encoder=st.sampled_from(["auto", "json"]), exc=RARELY, stack=RARELY, trace=RARELY,
       datefmt=st.sampled_from([None, None, "%d/%m %H:%M:%S \"%%\""]),
       name=st.sampled_from(["app", "app", "app", "uvicorn.access", "é\n"]))
def test_the_line_equals_the_general_paths_encoded_dict(
        fields: Any, extras: list[dict[str, Any]], message: str, args: tuple[Any, ...] | None,
        bound: dict[str, Any], shared_context: bool, static: dict[str, Any],
        rename: dict[str, str], encoder: Any, exc: bool, stack: bool, trace: bool,
        datefmt: str | None, name: str) -> None:
    """For any record, ``format`` writes exactly ``encode(_to_dict_general(record))``, byte for
    byte: odd strings, huge ints, tiny and non-finite floats, nested and unusual values, chosen,
    renamed and static fields, bound context (one dict for every record, or one each, its
    fields clashing with the others), exceptions, stacks, trace ids, both encoders."""
    formatter = JsonFormatter(fields, datefmt, rename_fields=rename, static_fields=static,
                              encoder=encoder)
    if "%" not in message:
        message += " %s" * len(args or ())
    else:
        args = None
    exc_info = _exc_info() if exc else None
    context = {k: v for k, v in bound.items() if k not in aiolog._context.RECORD_ATTRIBUTES}
    outer = aiolog.context(**context) if shared_context else contextlib.nullcontext()
    # Several records through one formatter: the plan for one key set meets records of another.
    with outer:
        _check_lines(formatter, extras, name, message, args, exc_info, stack, trace,
                     {} if shared_context else context)


def _check_lines(formatter: JsonFormatter, extras: list[dict[str, Any]], name: str,
                 message: str, args: tuple[Any, ...] | None, exc_info: Any, stack: bool,
                 trace: bool, context: dict[str, Any]) -> None:
    for extra in extras:
        record = logging.getLogger(name).makeRecord(
            name, logging.INFO, __file__, 1, message, args, exc_info,
            sinfo="Stack (most recent call last):\n  here" if stack else None,
            extra={k: v for k, v in extra.items() if k not in ("message", "taskName")} or None)
        if trace:
            record.trace_id, record.span_id = "t" * 32, "s" * 16
        with aiolog.context(**context) if context else contextlib.nullcontext():
            try:
                expected = formatter.encode(formatter._to_dict_general(copy.copy(record)))
            except Exception as error:  # e.g. an int too long for str(): format raises too
                with pytest.raises(type(error)):
                    formatter.format(copy.copy(record))
                continue
            assert formatter.format(copy.copy(record)) == expected


def test_a_bound_context_keeps_the_line_off_the_general_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A context of strings and numbers is written by the plan, also when it changes between
    records; only a field an extra field of the same name replaces sends a line to encode()."""
    formatter = JsonFormatter()
    general = []
    encode = JsonFormatter.encode
    monkeypatch.setattr(JsonFormatter, "encode",
                        lambda self, data: general.append(data) or encode(self, data))
    log = logging.getLogger("app")

    def line(**extra: Any) -> dict[str, Any]:
        record = log.makeRecord("app", logging.INFO, __file__, 1, "m %s", ("x",), None,
                                extra=extra)
        return json.loads(formatter.format(record))

    with aiolog.context(request_id="r-1", user=7):
        fields = line(status=200)
        assert list(fields.items())[3:] == [("message", "m x"), ("request_id", "r-1"),
                                            ("user", 7), ("status", 200)]
        with aiolog.context(retry=True, cost=1.5, note=None):
            fields = line(status=200)
            assert list(fields.items())[4:] == [("request_id", "r-1"), ("user", 7),
                                                ("retry", True), ("cost", 1.5), ("note", None),
                                                ("status", 200)]
        assert list(line(status=200))[4:] == ["request_id", "user", "status"]
        assert not general
        assert line(user=8)["user"] == 8  # the extra field wins: the general path says where
        assert len(general) == 1
        formatter = JsonFormatter(context=False)
        assert "request_id" not in line(status=200)
    assert len(general) == 1
