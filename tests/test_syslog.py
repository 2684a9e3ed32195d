"""AsyncSyslogHandler: the message format, and delivery to a real rsyslogd over every transport."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import Any

import pytest

import aiolog

from .conftest import run_script
from .rsyslogd import Rsyslogd, missing

N = 20_000


def _logger(handler: logging.Handler) -> logging.Logger:
    """A logger of its own that sends only to ``handler``."""
    logger = logging.getLogger(f"syslogtest.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


class _Datagrams:
    """A UDP socket on 127.0.0.1 that keeps what it receives (for the format tests)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.address = self.sock.getsockname()

    def receive(self) -> str:
        return self.sock.recv(65536).decode("utf-8")


@pytest.fixture
def datagrams() -> Iterator[_Datagrams]:
    server = _Datagrams()
    yield server
    server.sock.close()


def _one(datagrams: _Datagrams, *args: object, extra: dict[str, object] | None = None,
         level: int = logging.INFO, **options: object) -> tuple[str, aiolog.AsyncSyslogHandler]:
    handler = aiolog.AsyncSyslogHandler(datagrams.address, **options)  # type: ignore[arg-type]
    _logger(handler).log(level, *args, extra=extra)  # type: ignore[arg-type]
    handler.flush()
    try:
        return datagrams.receive(), handler
    finally:
        handler.close()


class TestFormat:
    def test_rfc5424_header_and_structured_data(self, datagrams: _Datagrams) -> None:
        """An RFC 5424 message: PRI from facility and level, RFC 3339 UTC time with 6 digits,
        the header fields, and context plus extra fields as escaped STRUCTURED-DATA."""
        with aiolog.context(request="r-1"):
            text, _ = _one(datagrams, "hello %s", "you", level=logging.ERROR,
                           extra={"user": 'a"b\\c]d', "n": 3}, facility="local3",
                           app_name="svc", hostname="web-1", msgid="API")
        pattern = (r'<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) web-1 svc (\d+) API '
                   r'\[aiolog@32473 request="r-1" user="a\\"b\\\\c\\]d" n="3"\] '
                   r'syslogtest\.\w+: hello you$')
        match = re.match(pattern, text)
        assert match, text
        assert int(match[1]) == SysLogHandler.LOG_LOCAL3 * 8 + SysLogHandler.LOG_ERR
        assert match[3] == str(__import__("os").getpid())
        assert "\ufeff" not in text  # the BOM is opt-in

    def test_cached_header_follows_time_level_and_process(self) -> None:
        """The header parts built once per second and per process change with the record's
        second, level and process (a forked child's records carry its own PROCID)."""
        from aiolog._syslog_format import SyslogFormat

        syslog_format = SyslogFormat(hostname="h", app_name="a")
        texts = []
        for created, level, process in ((0.25, logging.INFO, 7), (0.5, logging.ERROR, 7),
                                        (1.125, logging.INFO, 8), (86400.0, 25, None)):
            record = logging.LogRecord("n", level, "p", 0, "m", None, None)
            record.created, record.process = created, process
            texts.append(syslog_format.message(record, "t"))
        assert texts == ["<14>1 1970-01-01T00:00:00.250000Z h a 7 - - t",
                         "<11>1 1970-01-01T00:00:00.500000Z h a 7 - - t",
                         "<14>1 1970-01-01T00:00:01.125000Z h a 8 - - t",
                         "<14>1 1970-01-02T00:00:00.000000Z h a - - - t"]

    def test_bom_and_own_sd_id(self, datagrams: _Datagrams) -> None:
        """``bom=True`` starts MSG with a BOM; ``sd_id`` names the element with its own number."""
        text, _ = _one(datagrams, "x", extra={"k": 1}, bom=True, sd_id="shop@99999")
        assert '[shop@99999 k="1"] \ufeffsyslogtest' in text

    def test_no_fields_is_a_nil_structured_data(self, datagrams: _Datagrams) -> None:
        """A record without context or extra fields has ``-`` as STRUCTURED-DATA."""
        text, _ = _one(datagrams, "plain")
        assert re.match(r"<14>1 \S+ \S+ \S+ \d+ - - syslogtest\.\w+: plain$", text), text

    def test_header_field_limits(self, datagrams: _Datagrams) -> None:
        """APP-NAME, HOSTNAME and MSGID are cut to RFC 5424's lengths, non-printables replaced."""
        text, _ = _one(datagrams, "x", app_name="a" * 60, hostname="my host\u00e9",
                       msgid="m" * 40)
        fields = text.split(" ")
        assert fields[2] == "my_host_"
        assert fields[3] == "a" * 48
        assert fields[5] == "m" * 32

    def test_long_message_is_cut_and_counted(self, datagrams: _Datagrams) -> None:
        """A message over ``max_size`` bytes is cut there, on a character boundary, and counted."""
        text, handler = _one(datagrams, "\u00e9" * 2000, max_size=1001)
        assert len(text.encode()) <= 1001 and text.endswith("\u00e9")
        assert handler.stats()["truncated"] == 1

    def test_rfc3164(self, datagrams: _Datagrams) -> None:
        """``rfc=3164``: PRI, a BSD timestamp, hostname and ``TAG[pid]:``."""
        text, _ = _one(datagrams, "old style", rfc=3164, app_name="svc", hostname="h1")
        assert re.match(r"<14>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d h1 svc\[\d+\]: "
                        r"syslogtest\.\w+: old style$", text), text

    @pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING,
                                       logging.ERROR, logging.CRITICAL])
    def test_levels_map_as_syslog_handler(self, datagrams: _Datagrams, level: int) -> None:
        """Each level gets the priority ``SysLogHandler`` gives it."""
        text, _ = _one(datagrams, "x", level=level, facility="daemon")
        stdlib = SysLogHandler.__new__(SysLogHandler)  # its mapping, without its socket
        priority = stdlib.encodePriority(SysLogHandler.LOG_DAEMON,
                                         stdlib.mapPriority(logging.getLevelName(level)))
        assert text.startswith(f"<{priority}>1 ")

    @pytest.mark.parametrize(("options", "message"), [
        ({"transport": "smtp"}, "transport must be one of"),
        ({"transport": "tls"}, "needs ssl_context"),
        ({"address": "/dev/log"}, "needs transport='unix'"),
        ({"transport": "unix"}, "needs a socket path"),
        ({"facility": "kernel"}, "unknown syslog facility"),
        ({"rfc": 1234}, "rfc must be 5424 or 3164"),
        ({"sd_id": "no-number"}, "sd_id must be NAME@ENTERPRISE-NUMBER"),
        ({"delivery_timeout": 0}, "delivery_timeout must be"),
        ({"max_size": 100}, "max_size must be"),
        ({"max_size": 70_000}, "at most 65507 over UDP"),
        ({"overflow": "wait"}, "overflow must be"),
    ])
    def test_bad_options_raise_at_construction(self, options: dict[str, object],
                                               message: str) -> None:
        """A wrong option is refused by the constructor with a message saying what to give."""
        address = options.pop("address", ("127.0.0.1", 514))
        with pytest.raises(ValueError, match=re.escape(message)):
            aiolog.AsyncSyslogHandler(address, **options)  # type: ignore[arg-type]

    def test_dictconfig_address_as_a_list(self, datagrams: _Datagrams) -> None:
        """``dictConfig`` builds the handler with the address as a JSON list."""
        logging.config.dictConfig({
            "version": 1, "disable_existing_loggers": False,
            "handlers": {"syslog": {"class": "aiolog.AsyncSyslogHandler",
                                    "address": list(datagrams.address), "transport": "udp"}},
            "loggers": {"dictconfig.syslog": {"handlers": ["syslog"], "level": "INFO"}},
        })
        logging.getLogger("dictconfig.syslog").info("configured")
        aiolog.flush_sync()
        assert datagrams.receive().endswith("dictconfig.syslog: configured")

    def test_collector_down_at_construction(self) -> None:
        """The constructor succeeds with nobody listening, and logging returns at once."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again: nobody listens there
        handler = aiolog.AsyncSyslogHandler(("127.0.0.1", port), transport="relp",
                                            delivery_timeout=0.2)
        _logger(handler).info("waits")
        assert handler.stats()["connected"] == 0
        handler.close()


# -- against the real rsyslogd ------------------------------------------------------------------

_why = missing()
daemon_only = pytest.mark.skipif(_why is not None, reason=_why or "")


@pytest.fixture(scope="module")
def rsyslogd() -> Iterator[Rsyslogd]:
    if _why is not None:
        pytest.skip(_why)
    server = Rsyslogd()
    server.start()
    yield server
    server.close()


def _handler(server: Rsyslogd, transport: str, **options: Any) -> aiolog.AsyncSyslogHandler:
    if transport == "unix":
        return aiolog.AsyncSyslogHandler(server.unix_socket, transport="unix", **options)
    context = server.client_context() if transport in ("tls", "relptls") else None
    return aiolog.AsyncSyslogHandler(server.address(transport),
                                     transport="relp" if transport == "relptls" else transport,
                                     ssl_context=context, **options)


def _marker() -> str:
    return "m" + uuid.uuid4().hex[:10]


@daemon_only
@pytest.mark.parametrize("transport", ["tcp", "tls", "relp", "relptls", "unix", "udp"])
def test_every_record_arrives(rsyslogd: Rsyslogd, transport: str) -> None:
    """20,000 records with ids reach rsyslogd exactly once over TCP, TLS, RELP, RELP over TLS
    and a unix socket (no event loop involved); over UDP, what arrives arrives whole."""
    marker = _marker()
    handler = _handler(rsyslogd, transport)
    logger = _logger(handler)
    for i in range(N):
        logger.info("record %s=%d", marker, i)
    handler.flush()
    handler.close()
    found = rsyslogd.wait_for(transport, marker, N)
    print(f"\n{transport}: {len(found)} of {N} arrived")
    assert len(found) == len(set(found))
    if transport == "udp":
        assert found and set(found) <= set(range(N))
    else:
        assert sorted(found) == list(range(N))
    assert handler.stats()["written"] == N


def _log_across_an_outage(rsyslogd: Rsyslogd, transport: str, *, stop_at: int,
                          down_for: float, kill: bool = False,
                          before: dict[int, Callable[[aiolog.AsyncSyslogHandler], object]]
                          | None = None) -> tuple[list[int], dict[str, int]]:
    """Log N numbered records at a service's pace, rsyslogd stopped (or killed) just before
    record ``stop_at`` and started again ``down_for`` s later (``before[i](handler)`` runs
    just before record i); then flush and close. The ids that arrived, and the stats."""
    marker = _marker()
    handler = _handler(rsyslogd, transport, delivery_timeout=30.0)
    logger = _logger(handler)
    restart = threading.Timer(down_for, rsyslogd.start)
    before = before or {}
    try:
        for i in range(N):
            if i in before:
                before[i](handler)
            if i == stop_at:
                rsyslogd.stop(kill=kill)
                restart.start()
            logger.info("record %s=%d", marker, i)
            if i % 500 == 0:
                time.sleep(0.02)  # a service logging over a few seconds, not one burst
        restart.join()
        if transport in ("tcp", "tls", "udp"):
            time.sleep(1.0)  # let a peer close be noticed by the next write
        handler.flush()
    finally:
        restart.join()
        if rsyslogd.process is None:
            rsyslogd.start()
    stats = handler.stats()
    handler.close()
    return rsyslogd.wait_for(transport, marker, N), stats


@daemon_only
@pytest.mark.parametrize("transport", ["relp", "relptls", "tcp", "tls", "udp"])
def test_collector_restart_mid_stream(rsyslogd: Rsyslogd, transport: str) -> None:
    """rsyslogd stopped halfway through 20,000 records and started 1 s later: RELP, plain and
    over TLS, loses none (resending what was unacknowledged); TCP, TLS and UDP report what
    they lost."""
    found, stats = _log_across_an_outage(rsyslogd, transport, stop_at=N // 2, down_for=1.0)
    arrived = set(found)
    print(f"\n{transport} across a restart: lost {N - len(arrived)} of {N}, "
          f"duplicates {len(found) - len(arrived)}, stats {stats}")
    assert stats["reconnects"] >= 1
    # Sending went on after the restart (UDP loses records even when steady: rsyslogd's
    # receive buffer overflows, so only some late one must have arrived).
    assert (max(arrived) > N // 2) if transport == "udp" else (N - 1 in arrived)
    if transport.startswith("relp"):
        assert arrived == set(range(N))
        assert len(found) - len(arrived) <= stats["resent"]


@daemon_only
def test_relp_txnrs_never_wrap_within_a_session(rsyslogd: Rsyslogd,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With TXNRs running out every 50 (librelp cannot follow a wrap: it wants TXNR+1 after
    999,999,999), the sink closes each used-up session once all is answered and opens the next
    at 1: every record arrives once and in order, none is resent, none refused."""
    from aiolog.sinks import _relp

    monkeypatch.setattr(_relp, "_TXNR_MAX", 50)  # the test-only seam: 1 open, 48 syslog, 1 close
    marker = _marker()
    handler = _handler(rsyslogd, "relp")
    logger = _logger(handler)
    for i in range(1000):
        logger.info("record %s=%d", marker, i)
    handler.flush()
    stats = handler.stats()
    handler.close()
    assert rsyslogd.wait_for("relp", marker, 1000) == list(range(1000))
    assert (stats["written"], stats["resent"], stats["errors"]) == (1000, 0, 0)
    assert stats["reconnects"] == 1000 // 48  # a new session per 48 records, none broken


def _settled_unacked(handler: aiolog.AsyncSyslogHandler) -> int:
    """How many commands wait for an answer once no more go out: the window (128) is full, or
    the chunk in hand is all sent (one chunk at a time, so it may hold fewer)."""
    last, since = -1, time.monotonic()
    for _ in range(3000):  # 30 s at most: a sink that never sends fails below, not hangs
        unacked = handler.stats()["unacked"]
        if unacked != last:
            last, since = unacked, time.monotonic()
        elif unacked >= 128 or unacked and time.monotonic() - since > 0.5:
            break
        time.sleep(0.01)
    assert last > 0, "nothing was waiting for an answer from the frozen collector"
    return last


@daemon_only
def test_relp_resends_what_a_killed_collector_never_acknowledged(rsyslogd: Rsyslogd) -> None:
    """rsyslogd frozen until the window (or the chunk in hand) waits for its answers, then
    killed (SIGKILL, no goodbye) and started again: RELP sends every unacknowledged record
    again, on the new session, and loses none; only resent records may arrive twice."""
    in_flight: list[int] = []
    found, stats = _log_across_an_outage(
        rsyslogd, "relp", stop_at=N // 2, down_for=0.5, kill=True,
        # Frozen, it answers nothing: the window fills with commands it never processed;
        # then it dies with them.
        before={N // 4: lambda _: rsyslogd.freeze(),
                N // 2: lambda handler: in_flight.append(_settled_unacked(handler))})
    print(f"\nrelp across a kill: lost {N - len(set(found))}, "
          f"duplicates {len(found) - len(set(found))}, resent {stats['resent']}")
    assert set(found) == set(range(N))
    assert stats["resent"] >= in_flight[0]
    assert len(found) - len(set(found)) <= stats["resent"]


@daemon_only
@pytest.mark.parametrize("transport", ["relp", "tcp"])
async def test_collector_down_at_start(rsyslogd: Rsyslogd, transport: str) -> None:
    """The handler is made and used while rsyslogd is down; once it is up, every record
    arrives."""
    marker = _marker()
    await asyncio.to_thread(rsyslogd.stop)
    try:
        handler = _handler(rsyslogd, transport)
        logger = _logger(handler)
        for i in range(2000):
            logger.info("record %s=%d", marker, i)
        await asyncio.sleep(0.3)
        assert handler.stats()["connected"] == 0
        assert handler.stats()["queued"] == 2000
    finally:
        await asyncio.to_thread(rsyslogd.start)
    await handler.aflush()
    await handler.aclose()
    found = rsyslogd.wait_for(transport, marker, 2000)
    assert sorted(found) == list(range(2000))


@daemon_only
async def test_relp_flush_returns_once_acknowledged(rsyslogd: Rsyslogd) -> None:
    """After ``flush()`` over RELP every record is acknowledged, so (Direct queue) in the file."""
    marker = _marker()
    handler = _handler(rsyslogd, "relp")
    logger = _logger(handler)
    for i in range(3000):
        logger.info("record %s=%d", marker, i)
    await handler.aflush()
    assert sorted(rsyslogd.ids("relp", marker)) == list(range(3000))
    assert handler.stats()["unacked"] == 0
    await handler.aclose()


@daemon_only
def test_relp_shutdown_reports_unacknowledged(rsyslogd: Rsyslogd,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """At close with the collector down, RELP waits ``delivery_timeout``, then reports on
    stderr and counts in ``errors`` what was never acknowledged."""
    rsyslogd.stop()
    try:
        handler = _handler(rsyslogd, "relp", delivery_timeout=0.5)
        logger = _logger(handler)
        for i in range(5):
            logger.info("lost %d", i)
        handler.close()
    finally:
        rsyslogd.start()
    assert handler.stats()["errors"] == 5
    assert handler.stats()["written"] == 0
    assert "5 syslog messages sent to relp://127.0.0.1" in capsys.readouterr().err


async def _worst_gap(stop: threading.Event) -> float:
    """The longest a 1 ms ticker on the running loop waited for its turn, until ``stop``."""
    worst, last = 0.0, time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    return worst


@daemon_only
@pytest.mark.parametrize("collector", ["down", "not reading"])
async def test_loop_never_waits_for_the_collector(collector: str) -> None:
    """While the collector is down, or accepts but never reads, the loop keeps running: its
    worst pause stays near that of an idle loop ticking at the same time in another thread
    (a loop blocked waiting for the collector stalls alone, for the whole outage, while the
    idle one ticks on; a loaded machine stalls both); the records wait in the queue."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    address = listener.getsockname()
    if collector == "not reading":
        listener.listen(1)  # the kernel accepts; nobody ever reads
    else:
        listener.close()  # nobody listens: connections are refused
    handler = aiolog.AsyncSyslogHandler(address, transport="tcp",
                                        delivery_timeout=0.5, overflow="drop", max_queue=50_000)
    logger = _logger(handler)
    stop = threading.Event()
    idle: list[float] = []
    beside = threading.Thread(target=lambda: idle.append(asyncio.run(_worst_gap(stop))))
    beside.start()
    busy_task = asyncio.ensure_future(_worst_gap(stop))
    payload = "x" * 500
    for i in range(40):  # 2 s, 20 MB: more than the socket buffers of a collector that stalls
        for _ in range(500):
            logger.info("%s %d", payload, i)
        await asyncio.sleep(0.05)
    stop.set()
    busy = await busy_task
    beside.join()
    listener.close()
    handler.close()
    print(f"\nworst loop pause: idle loop beside {idle[0] * 1000:.1f} ms, collector {collector} "
          f"{busy * 1000:.1f} ms")
    assert busy < idle[0] + 0.5  # an outage of 2 s: a blocked loop would show it whole


@daemon_only
def test_unverified_certificate_is_reported(rsyslogd: Rsyslogd,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A collector whose certificate does not verify is reported on stderr (``flush()``
    returns), not waited for in silence, and its records count as errors at close."""
    handler = aiolog.AsyncSyslogHandler(rsyslogd.address("tls"), transport="tls",
                                        ssl_context=ssl.create_default_context(),
                                        delivery_timeout=0.3)
    _logger(handler).info("never sent")
    handler.flush()  # returns: the owner reports the failure, it does not just wait
    handler.close()
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    assert handler.stats()["errors"] == 1


@daemon_only
@pytest.mark.parametrize("mistake", ["wrong CA", "no client certificate"])
def test_relp_tls_refused_is_reported_and_records_kept(rsyslogd: Rsyslogd, mistake: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """RELP over TLS that cannot come up (the server's certificate does not verify, or the
    server wants a client certificate we lack) is reported through ``handleError`` (``flush()``
    returns); the records stay queued, and count as errors only at close."""
    if mistake == "wrong CA":
        port, context, expected = "relptls", ssl.create_default_context(), "CERTIFICATE_VERIFY_FAILED"
    else:
        port, context, expected = "relpmtls", rsyslogd.client_context(), "CERTIFICATE_REQUIRED"
    handler = aiolog.AsyncSyslogHandler(rsyslogd.address(port), transport="relp",
                                        ssl_context=context, delivery_timeout=0.3)
    logger = _logger(handler)
    for i in range(3):
        logger.info("never sent %d", i)
    handler.flush()  # returns: the owner reports the failure, it does not just wait
    kept = handler.stats()
    handler.close()
    assert expected in capsys.readouterr().err
    assert (kept["queued"], kept["written"], kept["errors"]) == (3, 0, 0)
    assert handler.stats()["errors"] == 3


@daemon_only
def test_relp_tls_with_a_client_certificate(rsyslogd: Rsyslogd) -> None:
    """RELP over TLS to an imrelp that checks client certificates (``tls.authMode="certvalid"``):
    with ``load_cert_chain`` on the context, every record arrives once."""
    marker = _marker()
    handler = aiolog.AsyncSyslogHandler(rsyslogd.address("relpmtls"), transport="relp",
                                        ssl_context=rsyslogd.client_context(certificate=True))
    logger = _logger(handler)
    for i in range(1000):
        logger.info("record %s=%d", marker, i)
    handler.flush()
    handler.close()
    assert sorted(rsyslogd.wait_for("relptls", marker, 1000)) == list(range(1000))
    assert handler.stats()["written"] == 1000


@daemon_only
def test_forked_child_opens_its_own_relp_session(rsyslogd: Rsyslogd, tmp_path: Path) -> None:
    """After ``fork()`` the child sends its records on a session of its own: the parent's
    and the child's records each arrive exactly once."""
    marker = _marker()
    run_script(tmp_path, f"""
        import logging, os, aiolog
        handler = aiolog.AsyncSyslogHandler(("127.0.0.1", {rsyslogd.ports["relp"]}),
                                            transport="relp")
        logger = logging.getLogger("fork")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        for i in range(100):
            logger.info("parent {marker}=%d", i)
        handler.flush()
        pid = os.fork()
        if pid == 0:
            for i in range(100):
                logger.info("child {marker}=%d", 1000 + i)
            handler.flush()
            os._exit(0 if handler.stats()["written"] == 100 else 1)
        for i in range(100, 200):
            logger.info("parent {marker}=%d", i)
        handler.flush()
        assert os.waitpid(pid, 0)[1] == 0
        assert handler.stats()["written"] == 200
    """)
    found = rsyslogd.wait_for("relp", marker, 300)
    assert sorted(found) == list(range(200)) + list(range(1000, 1100))


@daemon_only
def test_unix_stream_socket(tmp_path: Path) -> None:
    """A unix stream socket gets octet-counted frames, one per record, tracebacks whole."""
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=serve)
    thread.start()
    handler = aiolog.AsyncSyslogHandler(path, transport="unix")
    logger = _logger(handler)
    for i in range(1000):
        logger.info("record n=%d", i)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    handler.close()
    thread.join(10)
    server.close()
    messages = []
    data = bytes(received)
    while data:
        length, _, rest = data.partition(b" ")
        messages.append(rest[: int(length)].decode())
        data = rest[int(length):]
    assert [int(m.rsplit("=", 1)[1]) for m in messages[:-1]] == list(range(1000))
    assert "Traceback" in messages[-1] and messages[-1].rstrip().endswith("ValueError: boom")


@daemon_only
async def test_configure_syslog_url(rsyslogd: Rsyslogd) -> None:
    """``configure(syslog="relp://...")`` adds the syslog handler beside the stream one."""
    marker = _marker()
    port = rsyslogd.ports["relp"]
    handlers = await aiolog.configure(syslog=f"relp://127.0.0.1:{port}", level="INFO")
    assert [type(h).__name__ for h in handlers] == ["AsyncStreamHandler", "AsyncSyslogHandler"]
    logging.getLogger("app").info("via configure %s=1", marker)
    await aiolog.flush()
    assert rsyslogd.ids("relp", marker) == [1]
    await aiolog.shutdown()


@pytest.mark.parametrize(("url", "message"), [
    ("http://loghost", "the scheme must be one of"),
    ("tcp://", "expected tcp://host:port"),
    ("udp://h:99999", "bad port"),
])
async def test_configure_refuses_a_bad_syslog_url(url: str, message: str) -> None:
    """A syslog URL that cannot be parsed is refused by ``configure()``, naming the problem."""
    with pytest.raises(ValueError, match=re.escape(message)):
        await aiolog.configure(syslog=url)


def test_stats_have_connection_counts() -> None:
    """A syslog handler's ``stats()`` adds connected and reconnects; RELP unacked and resent."""
    tcp = aiolog.AsyncSyslogHandler(("127.0.0.1", 9), transport="tcp", delivery_timeout=0.1)
    relp = aiolog.AsyncSyslogHandler(("127.0.0.1", 9), transport="relp", delivery_timeout=0.1)
    assert {"connected", "reconnects"} <= tcp.stats().keys()
    assert {"connected", "reconnects", "unacked", "resent"} <= relp.stats().keys()
    tcp.close()
    relp.close()


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("unix sockets and rsyslogd")
