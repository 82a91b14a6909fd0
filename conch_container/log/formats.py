"""The two line formats, ``ljson`` and ``text``, as ContainerSSH writes them.

``ljson`` (the default) is one JSON object per line::

    {"timestamp": "2024-05-01T12:00:00Z", "level": "notice", "code": "SSH_CONNECTED",
     "message": "Connection from 192.0.2.1:50000", "details": {"connectionId": "...", ...}}

``text`` is tab-separated (``<TAB>`` below)::

    2024-05-01T12:00:00Z<TAB>notice<TAB>SSH_CONNECTED<TAB>Connection from ... (connectionId=...)

ContainerSSH's ``text`` lines have no code column (``TIMESTAMP LEVEL MESSAGE``);
this implementation adds the code as the third column because a line without
its code cannot be searched or alerted on the way the ``ljson`` output can.

Timestamps are RFC 3339 in UTC at second precision, as ContainerSSH writes
them. For syslog the body carries neither timestamp nor level: the syslog
header has both (see :mod:`conch_container.log.syslog`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from conch_container.log.records import LogRecord

#: A function from a record to one output line (without the newline).
Formatter = Callable[[LogRecord], str]

FORMATS = ("ljson", "text")

# Control characters would split a record over several lines or columns.
_ESCAPES = {i: f"\\x{i:02x}" for i in range(0x20)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x7F: "\\x7f",
}


def rfc3339(timestamp: float) -> str:
    """``timestamp`` as RFC 3339 in UTC, second precision (``2024-05-01T12:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _details(record: LogRecord) -> dict[str, Any]:
    details = dict(record.details)
    if record.traceback is not None:
        details.setdefault("traceback", record.traceback)
    return details


def _dumps(obj: object) -> str:
    # Values were made JSON-safe when the record was built; ``default=str``
    # only guards against a record built by hand.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def format_ljson(record: LogRecord) -> str:
    """The ``ljson`` line for ``record``."""
    return _dumps(
        {
            "timestamp": rfc3339(record.timestamp),
            "level": record.level.label,
            "code": record.code,
            "message": record.message,
            "details": _details(record),
        }
    )


def format_text(record: LogRecord) -> str:
    """The ``text`` line for ``record``.

    A traceback (debug level only) follows on continuation lines that start
    with a tab, so that every record still starts with a timestamp.
    """
    line = "\t".join(
        (
            rfc3339(record.timestamp),
            record.level.label,
            record.code,
            _text_message(record, traceback=False),
        )
    )
    if record.traceback is not None:
        line += "".join("\n\t" + tb_line for tb_line in record.traceback.splitlines())
    return line


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else _dumps(value)
    return text.translate(_ESCAPES)


def _text_message(record: LogRecord, *, traceback: bool) -> str:
    message = record.message.translate(_ESCAPES)
    details = _details(record) if traceback else dict(record.details)
    if details:
        labels = " ".join(f"{k}={_text_value(v)}" for k, v in details.items())
        message = f"{message} ({labels})"
    return message


def format_ljson_syslog(record: LogRecord) -> str:
    """The ``ljson`` syslog body: ``code``, ``message`` and ``details`` only."""
    return _dumps({"code": record.code, "message": record.message, "details": _details(record)})


def format_text_syslog(record: LogRecord) -> str:
    """The ``text`` syslog body: ``CODE MESSAGE (key=value ...)`` on one line."""
    return f"{record.code} {_text_message(record, traceback=True)}"


def line_formatter(name: str) -> Formatter:
    """The line formatter for a ``log.format`` value."""
    try:
        return {"ljson": format_ljson, "text": format_text}[name]
    except KeyError:
        raise ValueError(f"unsupported log format: {name!r}") from None


def syslog_formatter(name: str) -> Formatter:
    """The syslog body formatter for a ``log.format`` value."""
    try:
        return {"ljson": format_ljson_syslog, "text": format_text_syslog}[name]
    except KeyError:
        raise ValueError(f"unsupported log format: {name!r}") from None
