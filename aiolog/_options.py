"""Option checks, run before anything is built: a bad option raises and leaves nothing behind.

The handlers' constructors and ``configure()`` call these first, so a wrong value or type is
refused when it is given, naming the option, and no half-built handler, open file or writer is
left registered (``logging`` keeps every handler it saw, and flushes it at exit).
"""

from __future__ import annotations

import codecs
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from .sinks._rotation import TimePolicy


# What TimedRotatingFileHandler accepts for ``when`` (it ignores case): a typo fails mypy.
When = Literal["S", "M", "H", "D", "midnight", "W0", "W1", "W2", "W3", "W4", "W5", "W6",
               "s", "m", "h", "d", "MIDNIGHT", "w0", "w1", "w2", "w3", "w4", "w5", "w6"]

T = TypeVar("T")


def one_of(ours: str, our_value: T | None, stdlib: str, stdlib_value: T | None,
           default: T) -> T:
    """The value of an option given in aiolog's spelling or the stdlib's, never both."""
    if our_value is not None and stdlib_value is not None:
        raise TypeError(f"give {ours}= or {stdlib}= (the stdlib's spelling), not both")
    if our_value is not None:
        return our_value
    return default if stdlib_value is None else stdlib_value


def check_mode(mode: object) -> None:
    """Only appending: the file is shared with other processes and rotated under their feet."""
    if mode == "w":
        raise ValueError(
            "mode='w' is refused: aiolog always appends, because another process may be "
            "writing the same file and truncating it would delete its records. To start "
            "each run with an empty file, delete or rotate the old one before configuring")
    if mode != "a":
        raise ValueError(f"mode must be 'a' (append), not {mode!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_queue(max_queue: object, overflow: object) -> None:
    if not _is_int(max_queue) or max_queue < 1:  # type: ignore[operator]
        raise ValueError(f"max_queue must be a positive integer, not {max_queue!r}")
    if overflow not in ("block", "drop"):
        raise ValueError(f"overflow must be 'block' or 'drop', not {overflow!r}")


def check_level(level: object, name: str = "level") -> None:
    """A level as ``Logger.setLevel`` takes it: a registered name or an integer >= 0."""
    if _is_int(level):
        if level < 0:  # type: ignore[operator]
            raise ValueError(f"{name} must be >= 0, not {level!r}")
        return
    if not isinstance(level, str):
        raise TypeError(f"{name} must be a level name or an integer, not {level!r}")
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ValueError(f"{name}: unknown level {level!r}")


def check_path(filename: object) -> str:
    """The absolute path of a log file name; a wrong type raises ``TypeError``."""
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"filename must be a str or os.PathLike, not {filename!r}")
    path = os.fspath(filename)
    if not isinstance(path, str) or not path:
        raise ValueError(f"filename must be a non-empty text path, not {filename!r}")
    return os.path.abspath(path)


def check_file(*, max_bytes: object, when: object, interval: object, utc: object,
               backup_count: object, compress: object, lock_timeout: object,
               encoding: object = "utf-8", errors: object = "backslashreplace",
               at_time: object = None, delay: object = False) -> None:
    """Every rotation and encoding option of ``AsyncFileHandler``, values and types."""
    if not _is_int(max_bytes) or max_bytes < 0:  # type: ignore[operator]
        raise ValueError(f"max_bytes must be an integer >= 0, not {max_bytes!r}")
    if not _is_int(backup_count) or backup_count < 0:  # type: ignore[operator]
        raise ValueError(f"backup_count must be an integer >= 0, not {backup_count!r}")
    if when is not None:
        if not isinstance(when, str):
            raise TypeError(f"when must be a str or None, not {when!r}")
        TimePolicy.parse(when, interval, False, at_time)  # type: ignore[arg-type]
    elif at_time is not None:
        raise ValueError("atTime needs when='midnight' or 'W0'..'W6': add one, or remove atTime")
    if not _is_int(interval) or interval < 1:  # type: ignore[operator]
        raise ValueError(f"interval must be a positive integer, not {interval!r}")
    for name, value in (("utc", utc), ("compress", compress), ("delay", delay)):
        if not isinstance(value, bool):  # "yes" and "no" are both true: refuse, don't guess
            raise TypeError(f"{name} must be True or False, not {value!r}")
    if (isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float))
            or not lock_timeout > 0):
        raise ValueError(f"lock_timeout must be a number > 0, not {lock_timeout!r}")
    if not isinstance(encoding, str) or not isinstance(errors, str):
        raise TypeError(f"encoding and errors must be str, not {encoding!r}, {errors!r}")
    codecs.lookup(encoding)  # unknown names raise LookupError now, not at the first write
    codecs.lookup_error(errors)


def check_formatter(format: object, datefmt: object, style: object,
                    defaults: object = None) -> logging.Formatter:
    """The formatter ``configure()`` gives its handlers; ``logging`` validates the fields."""
    if not isinstance(format, str):
        raise TypeError(f"format must be a str, not {format!r}")
    if datefmt is not None and not isinstance(datefmt, str):
        raise TypeError(f"datefmt must be a str or None, not {datefmt!r}")
    if style not in ("%", "{", "$"):
        raise ValueError(f"style must be one of '%', '{{', '$', not {style!r}")
    if defaults is not None and not isinstance(defaults, Mapping):
        raise TypeError(f"defaults must be a dict of field names to values, not {defaults!r}")
    fmt: Any = style  # a Literal for typeshed, checked just above
    return logging.Formatter(format, datefmt, fmt, defaults=defaults)
