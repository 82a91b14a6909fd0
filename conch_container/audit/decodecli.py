"""``conch-container audit``: read ``binary`` audit logs without the gateway.

``audit decode`` prints each message as one JSON object per line, the way
ContainerSSH's ``containerssh-auditlog-decoder`` does, so the tools operators
built on that output keep working; ``audit asciicast`` turns a log into an
asciinema recording. Both read ContainerSSH's logs as well as ours, and
neither ever answers bad input with a traceback: a log that stops early is
printed as far as it goes with a warning, a file that is no audit log is
named in an error line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from conch_container.audit.codec.asciicast import asciicast_from_messages
from conch_container.audit.codec.binaryread import (
    AuditLogFormatError,
    BinaryLogReader,
    StreamEnd,
)
from conch_container.audit.message import message_to_json

STDIN = "-"
#: Go's encoding/json escapes these (HTML safety and JavaScript line ends);
#: doing the same keeps lines byte-for-byte like ContainerSSH's decoder.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class _Failed(Exception):
    """An input that could not be read; its message names it and says why."""


def add_audit_parser(commands: Any) -> None:
    """Add ``audit decode`` and ``audit asciicast`` to the ``conch-container`` subcommands."""
    audit = commands.add_parser("audit", help="read binary audit logs")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    decode = actions.add_parser(
        "decode",
        help="print the messages of audit logs as JSON lines",
        description="Print every message as one JSON object per line, as "
        "containerssh-auditlog-decoder does. A directory stands for its files "
        "whose names have no '.'; no PATH, or -, reads standard input.",
    )
    decode.add_argument("paths", nargs="*", metavar="PATH", help="log file or directory")
    decode.set_defaults(function=decode_command)
    cast = actions.add_parser(
        "asciicast",
        help="convert an audit log to an asciinema recording",
        description="Write the terminal output recorded in a binary audit log as an "
        "asciicast v2 file, for asciinema play or asciinema cat.",
    )
    cast.add_argument("file", metavar="FILE", help="log file, or - for standard input")
    cast.add_argument("-o", "--output", metavar="OUT", help="write here, not to standard output")
    cast.set_defaults(function=asciicast_command)


def decode_command(args: argparse.Namespace) -> int:
    """Print every message of every log; 1 if any input was no readable log."""
    status = 0
    out = _stdout()
    for name in _expand(args.paths or [STDIN]):
        try:
            with _reader(name) as reader:
                for message in reader:
                    out.write(json_line(message_to_json(message)).encode() + b"\n")
                out.flush()
                status |= _report_end(name, reader)
        except _Failed as error:
            print(error, file=sys.stderr)
            status = 1
        except BrokenPipeError:
            return _closed_stdout(status)
    return status


def asciicast_command(args: argparse.Namespace) -> int:
    """Convert one log to an asciicast; 1 if it is no readable log."""
    try:
        with _reader(args.file) as reader, _output(args.output) as out:
            for data in asciicast_from_messages(reader):
                out.write(data)
            return _report_end(args.file, reader)
    except _Failed as error:
        print(error, file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _closed_stdout(0)


def json_line(value: dict[str, Any]) -> str:
    """``value`` as Go's ``json.Marshal`` writes it: compact, UTF-8, HTML-escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_GO_ESCAPES)


def _expand(paths: list[str]) -> Iterator[str]:
    """Each path; a directory as its audit files, sorted, as ContainerSSH lists them."""
    for path in paths:
        if path == STDIN or not os.path.isdir(path):
            yield path
            continue
        try:
            names = sorted(os.listdir(path))
        except OSError as error:
            print(f"{path}: {error.strerror or error}", file=sys.stderr)
            continue
        for name in names:
            full = os.path.join(path, name)
            if "." not in name and os.path.isfile(full) and os.path.getsize(full) > 0:
                yield full


@contextmanager
def _reader(name: str) -> Iterator[BinaryLogReader]:
    label = "standard input" if name == STDIN else name
    try:
        with _input(name) as source:
            try:
                reader = BinaryLogReader(source)
            except AuditLogFormatError as error:
                raise _Failed(f"{label}: {error}") from None
            yield reader
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        raise _Failed(f"{label}: {error.strerror or error}") from None


@contextmanager
def _input(name: str) -> Iterator[BinaryIO]:
    if name == STDIN:
        yield sys.stdin.buffer
    else:
        with open(name, "rb") as source:
            yield source


@contextmanager
def _output(name: str | None) -> Iterator[BinaryIO]:
    if name is None:
        out = _stdout()
        yield out
        out.flush()
        return
    try:
        with open(name, "wb") as target:
            yield target
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        raise _Failed(f"{name}: {error.strerror or error}") from None


def _report_end(name: str, reader: BinaryLogReader) -> int:
    """Print the reader's warning, if any; 1 if the log was damaged."""
    label = "standard input" if name == STDIN else name
    if reader.warning is not None:
        kind = "error" if reader.end is StreamEnd.CORRUPT else "warning"
        print(f"{label}: {kind}: {reader.warning}", file=sys.stderr)
    return 1 if reader.end is StreamEnd.CORRUPT else 0


def _stdout() -> BinaryIO:
    sys.stdout.flush()
    return sys.stdout.buffer


def _closed_stdout(status: int) -> int:
    """The reader of our output went away (``| head``): stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return status
