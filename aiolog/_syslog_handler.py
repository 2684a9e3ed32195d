"""The syslog handler: a record becomes one syslog message on the caller, sent off the loop.

The message is built where the record is formatted (``emit()``, on the caller), so it is the
queued "line"; the sink (``sinks._syslog``, ``sinks._relp``) frames and sends each one on the
writer's owner thread. Also ``syslog_handler(url)``, what ``configure(syslog=...)`` builds.
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from typing import Final

from . import _options
from ._format import FastFormatter
from ._handler import DEFAULT_MAX_QUEUE, AsyncHandler
from ._queue import Overflow
from ._registry import sink_writer
from ._syslog_format import DEFAULT_SD_ID, SyslogFormat
from .sinks import RelpSink, SyslogSink
from .sinks._net import Address
from .sinks._syslog import DEFAULT_MAX_SIZE, TRANSPORTS

# No well-known port for RELP: 2514 is what rsyslog's documentation uses.
DEFAULT_PORTS: Final = {"udp": 514, "tcp": 514, "tls": 6514, "relp": 2514}
# The header carries time, host, program and severity: the message needs only the rest.
SYSLOG_FORMAT: Final = "%(name)s: %(message)s"
_UDP_MAX: Final = 65_507  # the largest UDP payload over IPv4


class AsyncSyslogHandler(AsyncHandler):
    """Send records to a syslog collector (rsyslog, syslog-ng) without blocking the caller.

    Args:
        address: ``(host, port)`` (or ``[host, port]``, as ``dictConfig`` gives it from JSON),
            or a unix socket path such as ``"/dev/log"``.
        transport: ``"udp"``; ``"tcp"`` (RFC 6587 octet counting); ``"tls"`` (TCP inside
            ``ssl_context``); ``"relp"`` (acknowledged, TLS when ``ssl_context`` is given);
            ``"unix"`` (a datagram or a stream socket at ``address``).
        ssl_context: for ``"tls"`` (required) and ``"relp"``.
        facility: a ``SysLogHandler`` facility name (``"user"``, ``"local0"``) or number.
        rfc: 5424 (default) or 3164.
        app_name: APP-NAME (the 3164 TAG); default the program's name.
        delivery_timeout: seconds shutdown and exit wait for a collector that is down or,
            over RELP, for the acknowledgements; then what is left counts in ``errors``.
        hostname, msgid: the RFC 5424 header fields (default the host's name, ``-``).
        sd_id: the SD-ID of the STRUCTURED-DATA element holding the bound context and
            ``extra`` fields: ``name@<your enterprise number>``.
        structured: whether to send those fields as STRUCTURED-DATA.
        bom: start MSG with a UTF-8 BOM (RFC 5424 allows it; rsyslog keeps it in ``%msg%``).
        max_size: messages longer than this many bytes are cut (counted in ``truncated``);
            rsyslog's default maximum is 8k.
        max_queue, overflow: as for ``AsyncFileHandler``.
    """

    terminator = ""  # a line is a whole message; the sink frames it

    def __init__(self, address: Address, *, transport: str = "udp",
                 ssl_context: ssl.SSLContext | None = None, facility: str | int = "user",
                 rfc: int = 5424, app_name: str | None = None, delivery_timeout: float = 10.0,
                 hostname: str | None = None, msgid: str | None = None,
                 sd_id: str = DEFAULT_SD_ID, structured: bool = True, bom: bool = False,
                 max_size: int = DEFAULT_MAX_SIZE, max_queue: int = DEFAULT_MAX_QUEUE,
                 overflow: Overflow = "block", level: int | str = logging.NOTSET) -> None:
        _options.check_queue(max_queue, overflow)
        _options.check_level(level)
        address = _check_address(address, transport, ssl_context)
        if (isinstance(delivery_timeout, bool) or not isinstance(delivery_timeout, (int, float))
                or not delivery_timeout > 0):
            raise ValueError(f"delivery_timeout must be a number of seconds > 0, "
                             f"not {delivery_timeout!r}")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 480:
            raise ValueError(f"max_size must be an integer >= 480 (RFC 5424's minimum), "
                             f"not {max_size!r}")
        if transport == "udp" and max_size > _UDP_MAX:
            raise ValueError(f"max_size must be at most {_UDP_MAX} over UDP (one datagram per "
                             f"record), not {max_size!r}: use TCP or RELP for larger records")
        self.syslog_format = SyslogFormat(facility=facility, rfc=rfc, app_name=app_name,
                                          hostname=hostname, msgid=msgid, sd_id=sd_id,
                                          structured=structured, bom=bom)
        kind = RelpSink if transport == "relp" else SyslogSink
        sink = kind(address, transport, ssl_context=ssl_context, max_size=max_size,
                    delivery_timeout=float(delivery_timeout))
        super().__init__(level)
        self.address = address
        self.transport = transport
        self.setFormatter(FastFormatter(SYSLOG_FORMAT))
        self._writer = sink_writer(sink, max_queue=max_queue, overflow=overflow)

    def line(self, record: logging.LogRecord) -> str:
        """The record's whole syslog message: header, structured data, formatted text."""
        return self.syslog_format.message(record, super().line(record))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._writer.sink!r} ({logging.getLevelName(self.level)})>"


def _check_address(address: object, transport: object,
                   ssl_context: object) -> Address:
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, "
                         f"not {transport!r}")
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {ssl_context!r}")
    if transport == "tls" and ssl_context is None:
        raise ValueError("transport='tls' needs ssl_context=, e.g. "
                         "ssl.create_default_context(cafile='collector-ca.pem')")
    if ssl_context is not None and transport not in ("tls", "relp"):
        raise ValueError(f"ssl_context is for transport 'tls' or 'relp', not {transport!r}")
    if transport == "unix":
        if not isinstance(address, str) or not address:
            raise ValueError(f"transport='unix' needs a socket path such as '/dev/log', "
                             f"not {address!r}")
        return address
    # A list too: dictConfig from JSON or YAML has no tuples.
    if (not isinstance(address, (tuple, list)) or len(address) != 2 or not isinstance(address[0], str)
            or not address[0] or isinstance(address[1], bool) or not isinstance(address[1], int)
            or not 0 < address[1] < 65536):
        hint = " (a socket path needs transport='unix')" if isinstance(address, str) else ""
        raise ValueError(f"address must be (host, port) for transport {transport!r}, "
                         f"not {address!r}{hint}")
    return address[0], address[1]


def parse_syslog_url(url: object) -> dict[str, object]:
    """The handler arguments a URL names: ``relp://host:2514``, ``tcp://host:514``,
    ``udp://host``, ``tls://host:6514`` (certificates checked against the system's CAs),
    ``unix:///dev/log``. A missing port is the transport's usual one (RELP: 2514)."""
    if not isinstance(url, str):
        raise TypeError(f"syslog must be a URL such as 'relp://loghost:2514', not {url!r}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:  # nothing reads them: refuse rather than ignore
        raise ValueError(f"Cannot parse syslog URL {url!r}: expected {scheme}://host:port "
                         "(no query or fragment)")
    if scheme == "unix":
        # "unix://dev/log" would read "dev" as a host and send to "/log": refuse it.
        if not parts.path or parts.netloc:
            raise ValueError(f"Cannot parse syslog URL {url!r}: expected unix:///dev/log "
                             "(three slashes before an absolute path)")
        return {"address": parts.path, "transport": "unix"}
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"Cannot parse syslog URL {url!r}: the scheme must be one of "
                         "udp, tcp, tls, relp, unix (as in 'relp://loghost:2514')")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # out of range, not a number, or 0 (which would silently become the default)
        raise ValueError(f"Cannot parse syslog URL {url!r}: bad port (1..65535)")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not parts.hostname or parts.path not in ("", "/") or "@" in parts.netloc:
        raise ValueError(f"Cannot parse syslog URL {url!r}: expected {scheme}://host:port")
    options: dict[str, object] = {"address": (parts.hostname, port), "transport": scheme}
    if scheme == "tls":
        options["ssl_context"] = ssl.create_default_context()
    return options


def syslog_handler(options: dict[str, object], *, max_queue: int, overflow: Overflow,
                   formatter: logging.Formatter | None) -> AsyncSyslogHandler:
    """What ``configure(syslog=url)`` adds: the handler for ``parse_syslog_url(url)``.

    It keeps its own message-only format (the syslog header carries time, level and host)
    unless ``configure()`` was given a ``formatter`` or ``format="json"``.
    """
    handler = AsyncSyslogHandler(**options, max_queue=max_queue,  # type: ignore[arg-type]
                                 overflow=overflow)
    if formatter is not None:
        handler.setFormatter(formatter)
    return handler
