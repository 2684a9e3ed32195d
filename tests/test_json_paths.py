"""JsonFormatter's fast path for the common record builds exactly the general path's dict."""

from __future__ import annotations

import copy
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import aiolog
from aiolog._json import JsonFormatter

# Names that clash on purpose: the chosen fields' keys and output keys, a reserved attribute.
NAMES = st.sampled_from(["time", "level", "logger", "message", "process", "order", "user",
                         "a", "b", "trace_id", "span_id", "status"])
VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats(allow_nan=False),
                   st.lists(st.integers(), max_size=2))
FIELD_LISTS = st.sampled_from([None, ["time", "level", "logger", "message", "process"],
                               ["message", "order", "thread"], "%(asctime)s %(message)s"])


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
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError as error:
            exc_info = (ValueError, error, error.__traceback__)
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
