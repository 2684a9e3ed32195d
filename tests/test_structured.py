"""Structured logs: JSON lines, per-task context, trace ids, and the libraries people use."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime as dt
import decimal
import enum
import io
import json
import logging
import os
import random
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import aiolog
from aiolog._json import JsonFormatter

from .conftest import lines
from .logfiles import LogFile, Record, check_complete_and_ordered

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
JSON_WORKER = Path(__file__).parent / "scripts" / "json_worker.py"


def record(msg: object = "hello", *args: object, level: int = logging.INFO,
           name: str = "app", exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    """A record as ``logger.info(msg, *args, extra=extra)`` makes it."""
    rec = logging.getLogger(name).makeRecord(name, level, __file__, 1, msg, args or None,
                                             exc_info, extra=extra or None)
    return rec


def captured(formatter: logging.Formatter | None = None) -> tuple[aiolog.AsyncStreamHandler, io.StringIO]:
    """An aiolog stream handler on a StringIO, attached to the ``app`` logger."""
    out = io.StringIO()
    handler = aiolog.AsyncStreamHandler(out)
    if formatter is not None:
        handler.setFormatter(formatter)
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # pytest's capture handler on the root would see the bad records too
    return handler, out


@pytest.fixture(autouse=True)
def _clean_app_logger_and_context() -> Any:
    """Each test starts without handlers on ``app`` and without bound fields."""
    log = logging.getLogger("app")
    yield
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.NOTSET)
    log.propagate = True
    aiolog.clear_context()


def written(handler: aiolog.AsyncHandler, out: io.StringIO) -> list[dict[str, Any]]:
    """Flush the handler and parse every line it wrote; a line that is not JSON fails."""
    handler.flush()
    return [json.loads(line) for line in out.getvalue().splitlines()]


@dataclasses.dataclass
class Point:
    x: int
    at: dt.datetime


class Colour(enum.Enum):
    RED = "red"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class TestJsonLines:
    def test_default_keys_and_extra_fields(self) -> None:
        """A record becomes time, level, logger, message, then its extra fields, in that order."""
        handler, out = captured(JsonFormatter())
        logging.getLogger("app").info("user %s", "bob", extra={"user_id": 7, "path": "/x"})
        [line] = written(handler, out)
        assert list(line) == ["time", "level", "logger", "message", "user_id", "path"]
        assert line["level"] == "INFO" and line["logger"] == "app" and line["message"] == "user bob"
        assert ISO_MS.match(line["time"]), line["time"]
        assert (line["user_id"], line["path"]) == (7, "/x")

    def test_time_is_iso8601_with_milliseconds_and_offset(self) -> None:
        """``time`` is the record's creation time, ISO 8601, milliseconds, UTC offset."""
        rec = record()
        rec.created, rec.msecs = 1764083291.042, 42.0
        assert JsonFormatter(utc=True).to_dict(rec)["time"] == "2025-11-25T15:08:11.042+00:00"
        local = JsonFormatter().to_dict(rec)["time"]
        assert dt.datetime.fromisoformat(local).timestamp() == pytest.approx(1764083291.042)

    def test_traceback_and_stack_stay_on_one_line(self) -> None:
        """An exception and a stack are string fields ``exc`` and ``stack``, never a line break."""
        handler, out = captured(JsonFormatter())
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logging.getLogger("app").exception("failed", stack_info=True)
        handler.flush()
        assert out.getvalue().count("\n") == 1
        [line] = written(handler, out)
        assert line["exc"].startswith("Traceback") and "ValueError: bad\nvalue" in line["exc"]
        assert line["stack"].startswith("Stack (most recent call last)")

    def test_values_json_cannot_hold_are_converted(self) -> None:
        """datetimes, UUIDs, Decimals, dataclasses, enums, bytes, sets, NaN, big ints, odd keys,
        cycles and objects whose str() fails are all written, and nothing raises."""
        cyclic: list[Any] = [1]
        cyclic.append(cyclic)
        when = dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.timezone.utc)
        handler, out = captured(JsonFormatter())
        logging.getLogger("app").info("values", extra={
            "when": when, "day": dt.date(2026, 1, 2), "id": uuid.UUID(int=1),
            "price": decimal.Decimal("1.10"), "point": Point(1, when), "colour": Colour.RED,
            "raw": b"ok\xff", "tags": {"a"}, "nan": float("nan"), "big": 2**70,
            "keys": {1: "int", None: "none", (1, 2): "tuple"}, "cyclic": cyclic,
            "odd": Unprintable(), "obj": object()})
        [line] = written(handler, out)
        assert line["when"] == "2026-01-02T03:04:05.006000+00:00" and line["day"] == "2026-01-02"
        assert line["id"] == "00000000-0000-0000-0000-000000000001" and line["price"] == "1.10"
        assert line["point"] == {"x": 1, "at": "2026-01-02T03:04:05.006000+00:00"}
        assert (line["colour"], line["raw"], line["tags"]) == ("red", "ok\\xff", ["a"])
        assert line["nan"] is None and line["big"] == 2**70
        assert line["keys"] == {"1": "int", "null": "none", "(1, 2)": "tuple"}
        assert line["cyclic"] == [1, "<aiolog: cycle>"]
        assert "could not be converted" in line["odd"] and line["obj"].startswith("<object")
        assert handler.stats()["errors"] == 0

    @pytest.mark.skipif(aiolog._json.orjson is None, reason="orjson not installed")
    def test_orjson_and_stdlib_json_write_the_same_bytes(self) -> None:
        """For the same record, the orjson and the stdlib encoder give identical lines."""
        fast, plain = JsonFormatter(encoder="orjson"), JsonFormatter(encoder="json")
        assert (fast.encoder, plain.encoder) == ("orjson", "json")
        rng = random.Random(13)
        floats = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(3000)]
        floats += [0.0, -0.0, 1e-5, 1.5e-7, 1e16, 1e-4, float("inf"), float("nan"), 0.1]
        when = dt.datetime(2026, 1, 2, 3, 4, 5)
        values = [*floats, "é ünïcode ✓", "tab\tnew\nline\u2028", "\x00", "text:0.00001 e-5",
                  when, when.date(), when.time(), uuid.uuid4(), decimal.Decimal("3.14"),
                  Point(2, when), Colour.RED, b"\xff", 2**64, -(2**63), True, None,
                  {"nested": [1.5e-6, {"k": when}]}, {3: 4}, (1, 2), frozenset(), object()]
        for value in values:
            rec = record("v %s", "x", value=value, other=[value, value])
            rec.created, rec.msecs = 1764083291.5, 500.0
            assert fast.format(rec) == plain.format(rec), value
            json.loads(plain.format(rec))

    def test_choose_rename_and_add_static_fields(self) -> None:
        """Fields are chosen by name or python-json-logger style format, renamed, and static
        fields are added to every line."""
        formatter = JsonFormatter(
            ["time", "level", "message", "process", "funcName"],
            rename_fields={"time": "@timestamp", "message": "msg", "user": "user.name"},
            static_fields={"service": "api", "version": "1.2"})
        data = formatter.to_dict(record("hi", user="bob"))
        assert list(data) == ["@timestamp", "level", "msg", "process", "funcName", "service",
                              "version", "user.name"]
        assert data["process"] == os.getpid() and data["service"] == "api"
        pjl_style = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        assert list(pjl_style.to_dict(record("hi"))) == ["asctime", "levelname", "name", "message"]
        braces = JsonFormatter("{levelname} {message} {missing}", style="{")
        assert braces.to_dict(record("hi")) == {"levelname": "INFO", "message": "hi",
                                                "missing": None}

    def test_reserved_attrs_let_record_attributes_through(self) -> None:
        """Record attributes left out of ``reserved_attrs`` are written as fields."""
        from aiolog._json import RESERVED_ATTRS

        formatter = JsonFormatter(["message"], reserved_attrs=RESERVED_ATTRS - {"process", "lineno"})
        assert formatter.to_dict(record("hi", n=1)) == {
            "message": "hi", "lineno": 1, "process": os.getpid(), "n": 1}

    def test_stdlib_json_is_used_without_orjson(self, tmp_path: Path) -> None:
        """Without orjson installed the stdlib encoder writes the lines, and asking for orjson
        says how to install it."""
        script = tmp_path / "no_orjson.py"
        script.write_text(
            "import sys; sys.modules['orjson'] = None\n"  # import orjson now raises ImportError
            "import logging, aiolog\n"
            "f = aiolog.JsonFormatter()\n"
            "print(f.encoder, f.format(logging.makeLogRecord({'msg': 'x', 'v': 1e-5})))\n"
            "try:\n    aiolog.JsonFormatter(encoder='orjson')\n"
            "except ImportError as e:\n    print(e)\n")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        first, second = proc.stdout.splitlines()
        assert first.startswith("json {") and '"v":1e-05' in first
        assert "pip install 'aiolog-safe[json]'" in second

    def test_chosen_fields_win_over_extra_fields_of_the_same_name(self) -> None:
        """An extra or bound field named like a chosen field cannot replace the record's own."""
        aiolog.bind(level="from-context")
        data = JsonFormatter().to_dict(record("hi", logger="from-extra"))
        assert (data["level"], data["logger"]) == ("INFO", "app")

    def test_dict_message_becomes_fields(self) -> None:
        """``logger.info({...})`` writes the dict's keys as fields, as python-json-logger does."""
        data = JsonFormatter().to_dict(record({"message": "m", "order": 5}))
        assert (data["message"], data["order"]) == ("m", 5)
        data = JsonFormatter().to_dict(record({"order": 6}))
        assert (data["message"], data["order"]) == ("", 6)

    def test_bad_options_fail_at_construction(self) -> None:
        """Wrong options raise when the formatter is built, not at the first record."""
        with pytest.raises(ValueError, match="encoder must be"):
            JsonFormatter(encoder="yaml")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="rename_fields"):
            JsonFormatter(rename_fields={"time": 1})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="static_fields"):
            JsonFormatter(static_fields={1: "x"})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="no fields found"):
            JsonFormatter("plain text")
        with pytest.raises(TypeError, match="json_default"):
            JsonFormatter(json_default="str")  # type: ignore[arg-type]

    def test_unformattable_message_is_reported_and_written_as_json(self) -> None:
        """A message whose arguments do not fit is reported to handleError and still written
        as one JSON line that says so."""
        reported: list[logging.LogRecord] = []
        handler, out = captured(JsonFormatter())
        handler.handleError = reported.append  # type: ignore[method-assign]
        logging.getLogger("app").info("%d items", "many", extra={"k": 1})
        [line] = written(handler, out)
        assert "could not be formatted" in line["message"] and line["k"] == 1
        assert len(reported) == 1

    def test_broken_formatter_still_writes_a_json_line(self) -> None:
        """When the JSON formatter itself fails, the line written is still JSON saying so."""
        class Broken(JsonFormatter):
            def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
                raise RuntimeError("broken")

        reported: list[logging.LogRecord] = []
        handler, out = captured(Broken())
        handler.handleError = reported.append  # type: ignore[method-assign]
        logging.getLogger("app").warning("kept %s", "anyway")
        [line] = written(handler, out)
        assert line["level"] == "WARNING" and line["message"].startswith("kept anyway")
        assert "could not be formatted" in line["message"] and len(reported) == 1

    def test_json_formatter_is_not_swapped_for_the_text_one(self) -> None:
        """setFormatter keeps a JsonFormatter (only a plain logging.Formatter is swapped)."""
        formatter = JsonFormatter()
        handler = aiolog.AsyncStreamHandler(io.StringIO())
        handler.setFormatter(formatter)
        assert handler.formatter is formatter
        handler.close()

    async def test_configure_format_json(self, tmp_path: Path) -> None:
        """``configure(format="json")`` writes one JSON object per line to the file."""
        path = tmp_path / "app.log"
        [handler] = await aiolog.configure(path, format="json")
        assert isinstance(handler.formatter, JsonFormatter)
        for i in range(100):
            logging.getLogger("svc").info("n=%d", i, extra={"i": i})
        await asyncio.wait_for(aiolog.flush(), timeout=30)
        assert [json.loads(line)["i"] for line in lines(path)] == list(range(100))
        await aiolog.configure(path, formatter=JsonFormatter(static_fields={"service": "s"}))
        logging.getLogger("svc").info("again")
        await asyncio.wait_for(aiolog.flush(), timeout=30)
        assert json.loads(lines(path)[-1])["service"] == "s"
        with pytest.raises(TypeError, match="formatter must be"):
            await aiolog.configure(path, formatter="json")  # type: ignore[arg-type]

    def test_dict_config(self, tmp_path: Path) -> None:
        """``dictConfig`` builds a JsonFormatter by ``class`` or, with options, by ``()``."""
        import logging.config

        path = tmp_path / "app.log"
        logging.config.dictConfig({
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"class": "aiolog.JsonFormatter"},
                           "tuned": {"()": "aiolog.JsonFormatter", "utc": True,
                                     "static_fields": {"service": "api"}}},
            "handlers": {
                "a": {"class": "aiolog.AsyncFileHandler", "filename": str(path), "formatter": "plain"},
                "b": {"class": "aiolog.AsyncFileHandler", "filename": str(path), "formatter": "tuned"}},
            "loggers": {"cfg": {"handlers": ["a", "b"], "level": "INFO", "propagate": False}}})
        log = logging.getLogger("cfg")
        try:
            log.info("hi")
            aiolog.flush_sync()
            first, second = (json.loads(line) for line in lines(path))
            assert first["message"] == second["message"] == "hi"
            assert "service" not in first and second["service"] == "api"
            assert second["time"].endswith("+00:00")
        finally:
            for handler in log.handlers[:]:
                log.removeHandler(handler)
                handler.close()

    def test_python_json_logger_works_on_aiolog_handlers(self) -> None:
        """python-json-logger's own JsonFormatter runs unchanged on an aiolog handler, and the
        ContextFilter gives it the bound fields."""
        pjl = pytest.importorskip("pythonjsonlogger.json")
        handler, out = captured(pjl.JsonFormatter("%(levelname)s %(message)s",
                                                  rename_fields={"levelname": "level"}))
        handler.addFilter(aiolog.ContextFilter())
        with aiolog.context(request_id="r-1"):
            logging.getLogger("app").info("hello", extra={"n": 1})
        [line] = written(handler, out)
        assert line == {"level": "INFO", "message": "hello", "n": 1, "request_id": "r-1"}


class TestContext:
    def test_bind_unbind_clear(self) -> None:
        """bind adds fields, unbind removes some, clear_context removes all."""
        aiolog.bind(a=1, b=2)
        aiolog.bind(c=3)
        assert aiolog.get_context() == {"a": 1, "b": 2, "c": 3}
        aiolog.unbind("a", "never-bound")
        assert aiolog.get_context() == {"b": 2, "c": 3}
        aiolog.clear_context()
        assert aiolog.get_context() == {}

    def test_context_block_restores_the_fields_before_it(self) -> None:
        """``with context(...)`` binds for the block only, even when the block raises."""
        aiolog.bind(a=1)
        with pytest.raises(RuntimeError):
            with aiolog.context(a=2, b=3):
                assert aiolog.get_context() == {"a": 2, "b": 3}
                raise RuntimeError
        assert aiolog.get_context() == {"a": 1}

    def test_record_attribute_names_cannot_be_bound(self) -> None:
        """Binding a name every LogRecord has raises, as logging refuses such extra fields."""
        with pytest.raises(ValueError, match="'levelname', 'msg'"):
            aiolog.bind(msg="x", levelname="y")
        with pytest.raises(ValueError, match="'message'"):
            with aiolog.context(message="x"):
                pass
        assert aiolog.get_context() == {}

    async def test_tasks_inherit_and_do_not_leak(self) -> None:
        """A task sees the fields bound before it was created; its own binds stay in it."""
        handler, out = captured(JsonFormatter())
        log = logging.getLogger("app")
        aiolog.bind(request_id="parent")

        async def child(n: int) -> None:
            aiolog.bind(child=n)
            await asyncio.sleep(0)
            log.info("child %d", n)

        await asyncio.wait_for(asyncio.gather(child(1), child(2)), timeout=10)
        log.info("parent")
        got = written(handler, out)
        assert {(d["message"], d["request_id"], d.get("child")) for d in got} == {
            ("child 1", "parent", 1), ("child 2", "parent", 2), ("parent", "parent", None)}

    async def test_threads_carry_their_own_and_to_thread_the_callers(self) -> None:
        """A thread logs with its own context; to_thread and run_in_executor with a copied
        context log with the caller's."""
        handler, out = captured(JsonFormatter())
        log = logging.getLogger("app")
        aiolog.bind(request_id="caller")

        def in_thread(name: str) -> None:
            log.info(name)

        def own_thread() -> None:
            aiolog.bind(worker="t")
            in_thread("thread")

        thread = threading.Thread(target=own_thread)
        thread.start()
        thread.join(timeout=10)
        await asyncio.wait_for(asyncio.to_thread(in_thread, "to_thread"), timeout=10)
        ctx = contextvars.copy_context()
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
            None, ctx.run, in_thread, "executor"), timeout=10)
        got = {d["message"]: d for d in written(handler, out)}
        assert got["thread"].get("request_id") is None and got["thread"]["worker"] == "t"
        assert got["to_thread"]["request_id"] == "caller"
        assert got["executor"]["request_id"] == "caller"

    def test_text_formats_show_bound_fields_and_a_dash_when_unbound(self) -> None:
        """``%(request_id)s`` shows the bound value, an extra= value first, and ``-`` when
        nothing is bound; the record is never lost."""
        reported: list[logging.LogRecord] = []
        handler, out = captured(logging.Formatter("%(request_id)s %(message)s"))
        handler.handleError = reported.append  # type: ignore[method-assign]
        log = logging.getLogger("app")
        log.info("unbound")
        with aiolog.context(request_id="r-7"):
            log.info("bound")
            log.info("extra wins", extra={"request_id": "x"})
            try:
                raise KeyError("k")
            except KeyError:
                log.exception("with traceback")
        handler.flush()
        text = out.getvalue().splitlines()
        assert text[:3] == ["- unbound", "r-7 bound", "x extra wins"]
        assert text[3] == "r-7 with traceback" and text[-1] == "KeyError: 'k'"
        assert reported == []

    def test_brace_and_dollar_styles_show_bound_fields(self) -> None:
        """``{request_id}`` and ``${request_id}`` formats read bound fields too."""
        with aiolog.context(request_id="r-8"):
            for fmt, style in (("{request_id} {message}", "{"), ("${request_id} $message", "$")):
                handler, out = captured(logging.Formatter(fmt, style=style))  # type: ignore[arg-type]
                logging.getLogger("app").info("hi")
                handler.flush()
                assert out.getvalue() == "r-8 hi\n"
                logging.getLogger("app").removeHandler(handler)
                handler.close()

    def test_structlog_contextvars_are_picked_up(self) -> None:
        """Fields bound with structlog's bind_contextvars appear in JSON and text records;
        aiolog's own binding wins on a name both have."""
        structlog = pytest.importorskip("structlog")
        tokens = structlog.contextvars.bind_contextvars(request_id="s-1", shared="structlog")
        try:
            aiolog.bind(shared="aiolog")
            data = JsonFormatter().to_dict(record("hi"))
            assert (data["request_id"], data["shared"]) == ("s-1", "aiolog")
            handler, out = captured(logging.Formatter("%(request_id)s %(message)s"))
            logging.getLogger("app").info("text")
            handler.flush()
            assert out.getvalue() == "s-1 text\n"
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


class TestTraceIds:
    def test_recording_span_ids_in_json_and_on_the_record(self) -> None:
        """Inside a recording OpenTelemetry span, JSON lines and the record carry its trace
        and span id in lower-case hex; outside a span they carry none."""
        pytest.importorskip("opentelemetry.sdk.trace")
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("test")  # not the global one: tests stay isolated
        handler, out = captured(JsonFormatter())
        text_handler, text_out = captured(logging.Formatter("%(trace_id)s %(span_id)s"))
        log = logging.getLogger("app")
        log.info("outside")
        with tracer.start_as_current_span("request") as span:
            log.info("inside")
            ids = span.get_span_context()
        outside, inside = written(handler, out)
        assert "trace_id" not in outside and "span_id" not in outside
        assert inside["trace_id"] == format(ids.trace_id, "032x")
        assert inside["span_id"] == format(ids.span_id, "016x")
        assert re.fullmatch(r"[0-9a-f]{32}", inside["trace_id"])
        text_handler.flush()
        assert text_out.getvalue().splitlines() == [
            "- -", f"{inside['trace_id']} {inside['span_id']}"]

    def test_non_recording_span_adds_nothing(self) -> None:
        """A span that does not record (sampled out) adds no ids."""
        pytest.importorskip("opentelemetry.sdk.trace")
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
        with tracer.start_as_current_span("dropped"):
            data = JsonFormatter().to_dict(record("hi"))
        assert "trace_id" not in data


class TestAccessLogs:
    def test_uvicorn_access_record_becomes_fields(self) -> None:
        """uvicorn's access record (its exact msg and args) gives client, method, path,
        protocol and status fields, and the usual message."""
        rec = record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", "/items?id=3", "1.1",
                     200, name="uvicorn.access")
        data = JsonFormatter().to_dict(rec)
        assert data["message"] == '127.0.0.1:50000 - "GET /items?id=3 HTTP/1.1" 200'
        assert {k: data[k] for k in ("client", "method", "path", "protocol", "status")} == {
            "client": "127.0.0.1:50000", "method": "GET", "path": "/items?id=3",
            "protocol": "HTTP/1.1", "status": 200}
        assert "client" not in JsonFormatter(access_fields=False).to_dict(rec)

    def test_gunicorn_access_record_becomes_fields_with_duration(self) -> None:
        """gunicorn's access record (a dict of atoms) gives the same fields plus duration."""
        atoms = {"h": "10.0.0.1", "m": "POST", "U": "/login", "q": "next=/", "H": "HTTP/1.1",
                 "s": "302", "D": 1500, "L": "0.001500", "r": "POST /login?next=/ HTTP/1.1"}
        rec = record('%(h)s "%(r)s" %(s)s', atoms, name="gunicorn.access")
        data = JsonFormatter().to_dict(rec)
        assert data["message"] == '10.0.0.1 "POST /login?next=/ HTTP/1.1" 302'
        assert {k: data[k] for k in ("client", "method", "path", "protocol", "status",
                                     "duration")} == {
            "client": "10.0.0.1", "method": "POST", "path": "/login?next=/",
            "protocol": "HTTP/1.1", "status": 302, "duration": 0.0015}

    async def test_real_uvicorn_access_record(self) -> None:
        """The record a real uvicorn server logs for a request on 127.0.0.1 becomes fields."""
        uvicorn = pytest.importorskip("uvicorn")
        import socket

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        access = logging.getLogger("uvicorn.access")
        handler, out = captured(JsonFormatter())
        logging.getLogger("app").removeHandler(handler)
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off",
                                               http="h11", ws="none"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            for _ in range(500):  # bounded: the server starts within 5 s or the test fails
                if server.started:
                    break
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout=10)
            writer.write(b"GET /items?id=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=10)
            access.removeHandler(handler)
            access.setLevel(logging.NOTSET)
            sock.close()
        [line] = written(handler, out)
        handler.close()
        assert line["logger"] == "uvicorn.access"
        assert (line["method"], line["path"], line["status"]) == ("GET", "/items?id=3", 201)
        assert line["protocol"] == "HTTP/1.1" and line["client"].startswith("127.0.0.1:")


class TestLibraries:
    def test_structlog_processor_formatter_on_an_aiolog_handler(self) -> None:
        """structlog loggers routed through ProcessorFormatter on an aiolog handler write one
        JSON line per event, with foreign stdlib records rendered alike."""
        structlog = pytest.importorskip("structlog")
        formatter = structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[structlog.stdlib.add_log_level])
        handler, out = captured(formatter)
        assert handler.formatter is formatter
        structlog.configure(
            processors=[structlog.stdlib.add_log_level,
                        structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=False)
        try:
            structlog.get_logger("app").info("created", order=5)
            logging.getLogger("app").warning("plain")
        finally:
            structlog.reset_defaults()
        got = written(handler, out)
        assert got == [{"order": 5, "event": "created", "level": "info"},
                       {"event": "plain", "level": "warning"}]


    async def test_structlog_calls_return_while_the_sink_is_stalled(self, tmp_path: Path) -> None:
        """structlog events logged on the loop return while the file takes nothing (a FIFO
        whose reader stopped), and every event arrives, in order, once it reads again."""
        structlog = pytest.importorskip("structlog")
        path = tmp_path / "app.log"
        os.mkfifo(path)
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists, and reads nothing
        os.set_blocking(reader, True)
        handler = aiolog.AsyncFileHandler(path)
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer()))
        await aiolog.configure(handlers=[handler])
        structlog.configure(
            processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=False)
        go, caller_was_stuck = threading.Event(), []

        def read_all() -> bytes:
            # Starts reading when told, or after 60 s if the logging calls never returned: a
            # regression fails the test instead of hanging it.
            if not go.wait(timeout=60):
                caller_was_stuck.append(True)
            with os.fdopen(reader, "rb") as fifo:
                return fifo.read()  # until every writer has closed it

        received = asyncio.get_running_loop().run_in_executor(None, read_all)
        try:
            slog = structlog.get_logger("app.stalled")
            n = 2000  # ~500 KB: far more than the pipe's 64 KiB buffer holds
            for i in range(n):
                slog.info("event", seq=i, pad="." * 200)
                if i % 100 == 0:
                    await asyncio.sleep(0)  # the writer runs, and its write() blocks on the pipe
            # Every call returned, yet the sink has not taken them: the loop never waited on it.
            assert handler.stats()["queued"] > 0 and not caller_was_stuck
            go.set()
            await asyncio.wait_for(aiolog.shutdown(), timeout=60)
            text = (await asyncio.wait_for(received, timeout=60)).decode()
        finally:
            go.set()
            structlog.reset_defaults()
        assert [json.loads(line)["seq"] for line in text.splitlines()] == list(range(n))


def read_json_set(directory: Path, base: str = "app.log") -> list[LogFile]:
    """Every file of a size-rotated set, oldest first; a line that is not JSON fails the test."""
    names = [n for n in os.listdir(directory) if n == base or
             (n.startswith(base + ".") and n[len(base) + 1:].isdigit())]
    names.sort(key=lambda n: -int(n[len(base) + 1:]) if n != base else 1)
    files = []
    for name in names:
        records = []
        for line in (directory / name).read_bytes().decode("utf-8").splitlines():
            data = json.loads(line)
            fields = data.get("extra", data)  # loguru keeps its bound fields under "extra"
            records.append(Record(0.0, fields["tag"], fields["seq"]))
        files.append(LogFile(name, records))
    return files


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["aiolog", "structlog", "loguru"])
def test_processes_write_json_into_one_rotating_file(tmp_path: Path, mode: str) -> None:
    """Three processes logging JSON (aiolog, structlog or loguru) into one file rotated by
    size: every line is valid JSON and every record is there exactly once, in order."""
    path, n, tags = tmp_path / "app.log", 5000, ["A", "B", "C"]
    procs = [subprocess.Popen([sys.executable, str(JSON_WORKER), json.dumps(
        {"path": str(path), "n": n, "tag": tag, "mode": mode, "max_bytes": 40_000})])
        for tag in tags]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    files = read_json_set(tmp_path)
    assert len(files) > 2, "the file never rotated"
    check_complete_and_ordered(files, {tag: n for tag in tags})
