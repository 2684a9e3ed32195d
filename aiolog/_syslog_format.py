"""A record as one syslog message: RFC 5424 (the default) or RFC 3164, built on the caller.

The syslog sink frames and sends what this builds; it never looks inside. Field limits and
character sets are RFC 5424's (section 6): a header field that breaks them is cut or cleaned
here, where the record still is, so a collector never rejects a whole message for a bad
hostname. Facility names and the level-to-severity mapping are ``SysLogHandler``'s.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
from itertools import islice
from logging.handlers import SysLogHandler
from typing import Any, Final

from . import _context
from ._json import RESERVED_ATTRS

# RFC 5424 section 6: header fields are PRINTUSASCII (33..126), with these maximum lengths.
HOSTNAME_MAX: Final = 255
APP_NAME_MAX: Final = 48
PROCID_MAX: Final = 128
MSGID_MAX: Final = 32
_NOT_PRINTABLE: Final = re.compile(r"[^!-~]")
# SD-NAME (an SD-ID's or a PARAM-NAME's): printable, without '=', SP, ']' and '"', at most 32.
_NOT_SD_NAME: Final = re.compile(r'[^!-~]|[= \]"]')
# An SD-ID of one's own is NAME@NUMBER, an SD-NAME itself: at most 32 in all, one '@'.
_SD_ID: Final = re.compile(r'[!-?A-~]+@\d+(\.\d+)*')
_SD_ESCAPE: Final = re.compile(r'(["\\\]])')
_BOM: Final = "\ufeff"
_UNSET: Final = object()
# 32473 is the enterprise number RFC 5612 reserves for documentation: set your own.
DEFAULT_SD_ID: Final = "aiolog@32473"
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")
# The attributes LogRecord.__init__ sets, in order: extra= fields come after them.
_INIT_ATTRIBUTES: Final = len(logging.LogRecord("n", logging.INFO, "p", 0, "m", None, None)
                              .__dict__)


def header_field(value: object, limit: int) -> str:
    """An RFC 5424 header field: printable ASCII (others become ``_``), cut at ``limit``."""
    text = _NOT_PRINTABLE.sub("_", str(value))[:limit]
    return text or "-"


def facility_code(facility: object) -> int:
    """A facility as ``SysLogHandler`` names it ("user", "local0") or its number."""
    if isinstance(facility, str):
        code = SysLogHandler.facility_names.get(facility.lower())
        if code is None:
            names = ", ".join(sorted(SysLogHandler.facility_names))
            raise ValueError(f"unknown syslog facility {facility!r}: use one of {names}")
        return code
    if isinstance(facility, int) and not isinstance(facility, bool) and 0 <= facility <= 23:
        return facility
    raise ValueError(f"facility must be a facility name or a number 0..23, not {facility!r}")


def severity(levelno: int) -> int:
    """The syslog severity of a level: ``SysLogHandler.mapPriority`` for the named levels, and
    the next named level below for a custom one (25 is "info", not SysLogHandler's "warning")."""
    names = SysLogHandler.priority_names
    for floor, name in ((logging.CRITICAL, "critical"), (logging.ERROR, "error"),
                        (logging.WARNING, "warning"), (logging.INFO, "info")):
        if levelno >= floor:
            return names[name]
    return names["debug"]


class SyslogFormat:
    """Builds the syslog message of a record from its formatted text.

    Args:
        facility: a ``SysLogHandler`` facility name or number.
        rfc: 5424 (structured data, RFC 3339 time in UTC) or 3164 (BSD: local time, no year).
        app_name: APP-NAME (3164: the TAG); default the program's name.
        hostname: HOSTNAME; default ``socket.gethostname()``.
        msgid: MSGID; default ``-``.
        sd_id: the SD-ID of the bound context and ``extra`` fields, ``name@<enterprise number>``.
        structured: whether to send them as STRUCTURED-DATA (RFC 5424 only).
        bom: start MSG with a UTF-8 BOM, as RFC 5424 allows. Off by default: rsyslog keeps the
            BOM inside ``%msg%``, where it breaks a JSON payload.
    """

    def __init__(self, *, facility: object = "user", rfc: object = 5424,
                 app_name: str | None = None, hostname: str | None = None,
                 msgid: str | None = None, sd_id: str = DEFAULT_SD_ID,
                 structured: bool = True, bom: bool = False) -> None:
        if rfc not in (5424, 3164):
            raise ValueError(f"rfc must be 5424 or 3164, not {rfc!r}")
        if (not isinstance(sd_id, str) or len(sd_id) > 32 or not _SD_ID.fullmatch(sd_id)
                or _NOT_SD_NAME.search(sd_id)):
            raise ValueError(f"sd_id must be NAME@ENTERPRISE-NUMBER, at most 32 characters in "
                             f"all (NAME printable ASCII without '@', '=', ' ', ']' or '\"'), "
                             f"such as {DEFAULT_SD_ID!r}, not {sd_id!r}")
        for name, value in (("structured", structured), ("bom", bom)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, not {value!r}")
        for name, text in (("app_name", app_name), ("hostname", hostname), ("msgid", msgid)):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"{name} must be a str or None, not {text!r}")
        self.facility = facility_code(facility)
        self.rfc = rfc
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        self.app_name = header_field(app_name or program, APP_NAME_MAX)
        self.hostname = header_field(hostname or socket.gethostname(), HOSTNAME_MAX)
        self.msgid = header_field(msgid or "-", MSGID_MAX)
        self.sd_id = sd_id
        self.structured = structured
        self.bom = _BOM if bom else ""
        self._pri = {level: f"<{self.facility * 8 + severity(level)}>" for level in range(60)}
        # What changes once a second or never, built once (the caller pays for every record):
        # per level, "<PRI>1 TIMESTAMP-TO-THE-SECOND." for the current second; per process,
        # "Z HOSTNAME APP-NAME PROCID MSGID ".
        self._second = -1
        self._stamp = ""
        self._heads: dict[int, str] = {}
        self._process: object = _UNSET
        self._tail = ""

    def message(self, record: logging.LogRecord, text: str) -> str:
        """The whole syslog message (without framing) of ``record``, whose MSG is ``text``."""
        if self.rfc == 3164:
            tag = f"{self.app_name}[{record.process}]"[:32]
            return (f"{self._pri_of(record.levelno)}{self._time_3164(record.created)} "
                    f"{self.hostname} {tag}: {text}")
        # The time is RFC 3339 in UTC with microseconds (RFC 5424 allows at most 6 digits).
        created = record.created
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
            self._heads = {}
        head = self._heads.get(record.levelno)
        if head is None:
            head = self._heads[record.levelno] = f"{self._pri_of(record.levelno)}1 {self._stamp}."
        if record.process != self._process:  # a record from a forked child, or the first
            self._process = record.process
            procid = record.process if record.process is not None else "-"
            self._tail = f"Z {self.hostname} {self.app_name} {procid} {self.msgid} "
        micro = min(int((created - second) * 1_000_000), 999_999)
        data = self._structured_data(record) if self.structured else "-"
        return f"{head}{micro:06d}{self._tail}{data} {self.bom}{text}"

    def _pri_of(self, levelno: int) -> str:
        return self._pri.get(levelno) or f"<{self.facility * 8 + severity(levelno)}>"

    def _time_3164(self, created: float) -> str:
        t = time.localtime(created)
        return (f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")

    def _structured_data(self, record: logging.LogRecord) -> str:
        """Bound context and ``extra`` fields as one SD-ELEMENT; ``-`` when there are none."""
        context = _context.current()
        attributes = record.__dict__
        if not context and len(attributes) == _INIT_ATTRIBUTES:
            return "-"  # the usual record: no fields (extra= ones come after LogRecord's own)
        fields: dict[str, Any] = dict(context)
        for key in islice(attributes, _INIT_ATTRIBUTES, None):
            if key not in RESERVED_ATTRS:
                fields[key] = attributes[key]
        if not fields:
            return "-"
        params = "".join(f' {_param_name(key)}="{_param_value(value)}"'
                         for key, value in fields.items())
        return f"[{self.sd_id}{params}]"


def _param_name(key: object) -> str:
    return _NOT_SD_NAME.sub("_", str(key))[:32] or "_"


def _param_value(value: object) -> str:
    """A PARAM-VALUE: any UTF-8, with '"', '\\' and ']' escaped by a backslash (RFC 5424 6.3.3)."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        text = f"<{type(value).__name__} object (str failed)>"
    return _SD_ESCAPE.sub(r"\\\1", text)
