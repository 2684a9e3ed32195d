"""Where chunks go. Each sink is written only by its writer's owner thread (``aiolog._owner``).

- ``_base``: the ``Sink`` protocol every destination implements.
- ``_file``: a rotating log file shared by processes, with ``_rotation`` (the rename sequence
  and compression) and ``_lock`` (the rotation lockfile) beside it.
- ``_stream``: a text stream (stderr, stdout, a pipe).
- ``_journal``: journald's native socket, one datagram per entry.
- ``_syslog``: a syslog collector over UDP, TCP, TLS or a unix socket, with ``_net`` (connect
  and send by a deadline) beside it, and ``_relp``: the same over RELP, acknowledged.
"""

from ._base import Sink
from ._file import FileSink
from ._journal import JournalSink
from ._relp import RelpSink
from ._stream import StreamSink
from ._syslog import SyslogSink

__all__ = ["FileSink", "JournalSink", "RelpSink", "Sink", "StreamSink", "SyslogSink"]
