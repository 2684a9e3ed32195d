"""AsyncSyslogHandler against misbehaving collectors: small real servers on 127.0.0.1 that do
what rsyslogd will not (never read, refuse a RELP session, answer 500, hint serverclose)."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import aiolog

from .rsyslogd import Rsyslogd
from .test_syslog import _logger, _marker, daemon_only, rsyslogd  # noqa: F401 (the fixture)

_HEADER = re.compile(rb"(\d+) (\w+) (\d+)[ \n]")


def _frame(txnr: int, command: bytes, data: bytes = b"") -> bytes:
    return b"%d %s %d%s\n" % (txnr, command, len(data), b" " + data if data else b"")


class _RelpServer:
    """A RELP server that answers ``open`` with ``open_answer`` and each ``syslog`` command
    with ``answer`` (None: never); after ``serverclose_after`` messages in each of the first sessions it
    sends the ``serverclose`` hint and hangs up. It keeps every message it answered 200."""

    def __init__(self, *, open_answer: bytes = b"200 OK\nrelp_version=0\ncommands=syslog",
                 answer: bytes | None = b"200 OK", serverclose_after: int = 0) -> None:
        self.open_answer, self.answer = open_answer, answer
        self.serverclose_after = serverclose_after
        self.received: list[bytes] = []
        self.sessions = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self._session, args=(conn, self.sessions), daemon=True).start()

    def _session(self, conn: socket.socket, session: int) -> None:
        buf, count = b"", 0
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while (match := _HEADER.match(buf)) is not None:
                    length = int(match[3])
                    start = match.end() if length else match.end() - 1
                    if len(buf) <= start + length:
                        break
                    txnr, command, body = int(match[1]), match[2], buf[start:start + length]
                    buf = buf[start + length + 1:]
                    if command == b"open":
                        conn.sendall(_frame(txnr, b"rsp", self.open_answer))
                    elif command == b"syslog":
                        if self.answer is None:
                            continue
                        conn.sendall(_frame(txnr, b"rsp", self.answer))
                        if self.answer.startswith(b"200"):
                            self.received.append(body)
                        count += 1
                        if count == self.serverclose_after and session < 3:
                            conn.sendall(_frame(0, b"serverclose"))
                            return
                    elif command == b"close":
                        conn.sendall(_frame(txnr, b"rsp", b"200 OK"))
                        return

    def close(self) -> None:
        self.sock.close()


def _flush_returns(handler: logging.Handler) -> bool:
    """Whether ``handler.flush()`` returns within a generous minute (a hang fails the test)."""
    thread = threading.Thread(target=handler.flush, daemon=True)
    thread.start()
    thread.join(60)
    return not thread.is_alive()


def test_relp_refused_session_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """A RELP server that refuses the session (``500`` to ``open``) is reported through
    ``handleError`` and ``flush()`` returns, as for any misconfiguration; records stay queued."""
    server = _RelpServer(open_answer=b"500 not allowed here")
    handler = aiolog.AsyncSyslogHandler(server.address, transport="relp", delivery_timeout=0.5)
    _logger(handler).info("refused")
    assert _flush_returns(handler)
    kept = handler.stats()
    handler.close()
    server.close()
    assert "refused the RELP session: b'500 not allowed here'" in capsys.readouterr().err
    assert (kept["queued"], kept["written"]) == (1, 0)
    assert handler.stats()["errors"] == 1


def test_relp_error_answers_are_reported_not_resent(capsys: pytest.CaptureFixture[str]) -> None:
    """A RELP server answering ``500`` to every message: each is reported and counted in
    ``errors``, none is sent again, and ``flush()`` returns."""
    server = _RelpServer(answer=b"500 no")
    handler = aiolog.AsyncSyslogHandler(server.address, transport="relp", delivery_timeout=0.5)
    logger = _logger(handler)
    for i in range(20):
        logger.info("n=%d", i)
    assert _flush_returns(handler)
    assert handler.stats()["errors"] == 20 and handler.stats()["resent"] == 0
    assert capsys.readouterr().err.count("refused a syslog message: b'500 no'") == 20
    handler.close()
    server.close()


def test_relp_serverclose_loses_nothing() -> None:
    """A server that hints ``serverclose`` in the middle of the stream (twice): every record
    arrives, in order, and once ``flush()`` returns all are acknowledged."""
    server = _RelpServer(serverclose_after=50)
    handler = aiolog.AsyncSyslogHandler(server.address, transport="relp")
    logger = _logger(handler)
    for i in range(500):
        logger.info("n=%d", i)
    assert _flush_returns(handler)
    ids = [int(m.rsplit(b"=", 1)[1]) for m in server.received]
    assert sorted(set(ids)) == list(range(500))  # duplicates allowed: counted in resent
    first = {i: ids.index(i) for i in range(500)}
    assert sorted(first, key=first.__getitem__) == list(range(500))  # first arrivals in order
    assert server.sessions >= 3 and handler.stats()["unacked"] == 0
    handler.close()
    server.close()


@pytest.mark.parametrize("transport", ["tcp", "relp"])
def test_shutdown_with_a_collector_that_never_reads_reports_every_record(
        tmp_path: Path, transport: str) -> None:
    """A collector that accepts but never reads: ``close()`` returns after about
    ``delivery_timeout`` and the stderr report counts every record not delivered, not only
    those of the chunk in hand (a hang fails through the subprocess timeout)."""
    script = tmp_path / "never_reads.py"
    script.write_text(f"""
import logging, socket, aiolog
server = socket.create_server(("127.0.0.1", 0))
held = []
import threading
threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
handler = aiolog.AsyncSyslogHandler(server.getsockname(), transport={transport!r},
                                    delivery_timeout=0.5, max_queue=100)
logger = logging.getLogger("x"); logger.propagate = False; logger.setLevel(10)
logger.addHandler(handler)
for i in range(20_000):
    logger.info("%s %d", "x" * 500, i)
handler.close()
stats = handler.stats()
print("STATS", stats["written"], stats["errors"], stats["dropped"])
""")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    written, errors, dropped = map(int, proc.stdout.split("STATS")[1].split())
    assert written + errors + dropped == 20_000 and errors > 0
    assert f"gave up on {errors} records for {transport}://127.0.0.1" in proc.stderr, \
        proc.stderr[-2000:]


@pytest.mark.parametrize(("url", "message"), [
    ("unix://dev/log", "unix:///dev/log"),
    ("relp://loghost:0", "bad port"),
    ("tcp://user:secret@loghost:514", "expected tcp://host:port"),
    ("tcp://loghost:514?x=1", "expected tcp://host:port"),
])
async def test_configure_refuses_a_misleading_syslog_url(url: str, message: str) -> None:
    """A syslog URL whose parts would be silently ignored or changed (a unix path read as a
    host, port 0, user, query) is refused by ``configure()``, naming the form to use."""
    with pytest.raises(ValueError, match=re.escape(message)):
        await aiolog.configure(syslog=url)


def test_unix_datagram_larger_than_the_socket_takes_is_cut(tmp_path: Path) -> None:
    """Over a unix datagram socket, a message within ``max_size`` but larger than the kernel
    takes in one datagram is cut to what it takes and counted; the records after it arrive."""
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(30)
        handler = aiolog.AsyncSyslogHandler(path, transport="unix", max_size=4_000_000)
        logger = _logger(handler)
        logger.info("big %s", "y" * 3_000_000)
        logger.info("after")
        first, second = server.recv(4_000_000), server.recv(4_000_000)
        handler.close()
    assert b"big yyy" in first and second.endswith(b"after")
    assert handler.stats()["truncated"] == 1 and handler.stats()["errors"] == 0


@daemon_only
def test_relp_two_threads_keep_their_order_across_a_restart(rsyslogd: Rsyslogd) -> None:
    """Two threads logging at once over RELP into rsyslogd, which is stopped and started again
    in the middle: every record of each arrives, and each thread's records first arrive in the
    order it logged them."""
    marker = _marker()
    handler = aiolog.AsyncSyslogHandler(rsyslogd.address("relp"), transport="relp",
                                        delivery_timeout=30.0)
    logger = _logger(handler)
    count = 4000
    halfway = threading.Barrier(3)

    def produce(name: str) -> None:
        for i in range(count):
            if i == count // 2:
                halfway.wait()  # the collector is stopped while both are mid-stream
                halfway.wait()
            logger.info("record %s%s=%d", marker, name, i)

    threads = [threading.Thread(target=produce, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    halfway.wait()
    rsyslogd.stop()
    restart = threading.Timer(1.0, rsyslogd.start)
    restart.start()
    halfway.wait()
    for thread in threads:
        thread.join()
    restart.join()
    handler.flush()
    handler.close()
    for name in "ab":
        found = rsyslogd.wait_for("relp", marker + name, count)
        first: dict[int, int] = {}
        for position, i in enumerate(found):
            first.setdefault(i, position)
        assert sorted(first) == list(range(count))
        assert sorted(first, key=first.__getitem__) == list(range(count))


@pytest.mark.parametrize("transport", ["tcp", "relp"])
def test_exit_with_the_collector_down_reports_what_it_gave_up(tmp_path: Path,
                                                              transport: str) -> None:
    """A process that exits (no close) while its collector is down waits at most about
    ``delivery_timeout``, then reports on stderr how many records were not delivered."""
    script = tmp_path / "exit_down.py"
    script.write_text(f"""
import logging, socket, aiolog
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # closed again: nobody listens there
handler = aiolog.AsyncSyslogHandler(("127.0.0.1", port), transport={transport!r},
                                    delivery_timeout=0.5)
logger = logging.getLogger("x"); logger.propagate = False; logger.setLevel(10)
logger.addHandler(handler)
for i in range(1000):
    logger.info("record %d", i)
""")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 0, proc.stderr
    assert f"gave up on 1000 records for {transport}://127.0.0.1" in proc.stderr, proc.stderr


@pytest.mark.parametrize("sd_id", ["a" * 30 + "@32473", "a@b@32473"])
def test_sd_id_that_is_not_an_sd_name_is_refused(sd_id: str) -> None:
    """An SD-ID longer than 32 characters in all, or with a second ``@``, is not an RFC 5424
    SD-NAME (a collector's parser would reject the message): the constructor refuses it."""
    with pytest.raises(ValueError, match="sd_id must be NAME@ENTERPRISE-NUMBER"):
        aiolog.AsyncSyslogHandler(("127.0.0.1", 514), sd_id=sd_id)


def test_structured_data_escapes_hostile_names_and_values() -> None:
    """``extra`` and context names that are no SD-NAMEs (space, ``=``, ``]``, ``"``,
    non-ASCII, too long) become valid ones; values escape ``"``, ``\\`` and ``]``, so the
    element parses as RFC 5424's grammar says, with every value intact."""
    from aiolog._syslog_format import SyslogFormat

    record = logging.LogRecord("n", logging.INFO, "p", 0, "m", None, None)
    fields = {'a b=c]"d': 'v]\\"\n', "\u043a\u043b\u044e\u0447": "\u00e9", "x" * 40: 2}
    for key, value in fields.items():
        setattr(record, key, value)
    with aiolog.context(**{"ctx key": "q]"}):
        text = SyslogFormat(hostname="h\u00f4st\tx", app_name="\u00e4pp\x00",
                            msgid="m id").message(record, "text")
    head, _, rest = text.partition(" [")
    assert head.split(" ")[2:4] == ["h_st_x", "_pp_"] and head.endswith(" m_id")
    element, _, msg = rest.rpartition("] ")
    assert msg == "text"
    param = r'([^= \]"]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"'
    assert re.fullmatch(r"aiolog@32473(?: " + param + ")+", element, re.S), element
    values = [re.sub(r'\\(["\\\]])', r"\1", v) for _, v in re.findall(param, element, re.S)]
    assert values == ["q]", 'v]\\"\n', "\u00e9", "2"]


@daemon_only
@pytest.mark.parametrize("transport", ["tcp", "relp"])
def test_record_over_max_size_arrives_cut_and_the_next_whole(rsyslogd: Rsyslogd,
                                                              transport: str) -> None:
    """A record far over ``max_size`` (rsyslog's 8k) reaches rsyslogd cut, as one message,
    and the record after it arrives whole: the framing stays in step."""
    marker = _marker()
    handler = aiolog.AsyncSyslogHandler(rsyslogd.address(transport), transport=transport)
    logger = _logger(handler)
    logger.info("big %s=0 %s", marker, "\u00e9" * 20_000)
    logger.info("small %s=1", marker)
    handler.flush()
    handler.close()
    assert rsyslogd.wait_for(transport, marker, 2) == [0, 1]
    text = rsyslogd.text(transport)
    big = next(line for line in text.splitlines() if f"{marker}=0" in line)
    assert 8000 < len(big.encode()) <= 8192 + 100 and big.endswith("\u00e9")
    assert handler.stats()["truncated"] == 1
