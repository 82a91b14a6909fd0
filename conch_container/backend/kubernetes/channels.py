"""The ``channel.k8s.io`` protocol of exec and attach streams, without the WebSocket.

Every WebSocket message carries one channel's data: its first byte is the
channel (0 stdin, 1 stdout, 2 stderr, 3 the error channel with the final
``Status`` object, 4 terminal resize as JSON ``{"Width": W, "Height": H}``),
the rest the data. ``v5.channel.k8s.io`` adds channel 255, close: the two
bytes ``255, 0`` close stdin while the output keeps flowing; under
``v4.channel.k8s.io`` stdin cannot be closed on its own.

The exit status is read from the error channel's ``Status`` as the official
clients read it: ``Success`` is exit code 0; reason ``NonZeroExitCode`` with a
cause of reason ``ExitCode`` holds the code (as a string) in the cause's
message; any other ``Failure`` is an error (the program did not run).
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import attrs

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
#: What the client offers, most preferred first.
SUBPROTOCOLS = (V5, V4)

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

#: The most the error channel may carry in one stream (a ``Status`` is a few hundred bytes).
MAX_STATUS = 64 * 1024


def frame(channel: int, data: bytes = b"") -> bytes:
    """One message: the channel byte, then ``data``."""
    return bytes((channel,)) + data


def resize_frame(columns: int, rows: int) -> bytes:
    return frame(RESIZE, json.dumps({"Width": columns, "Height": rows}).encode("ascii"))


def close_stdin_frame() -> bytes:
    """The v5 message that closes stdin."""
    return frame(CLOSE, bytes((STDIN,)))


@attrs.frozen
class ExitStatus:
    """What the error channel said: an exit code, or why there is none.

    :ivar exit_code: the program's exit code, None if it did not run.
    :ivar error: the server's message when there is no exit code.
    """

    exit_code: int | None
    error: str | None = None


def parse_status(data: bytes) -> ExitStatus:
    """The exit status in the error channel's content (a ``metav1.Status``)."""
    try:
        status = json.loads(data)
    except ValueError:
        text = data[:1024].decode("utf-8", "replace").strip()
        return ExitStatus(None, text or "an empty status")
    if not isinstance(status, dict):
        return ExitStatus(None, "the status is not a JSON object")
    if status.get("status") == "Success":
        return ExitStatus(0)
    message = str(status.get("message") or status.get("reason") or "the program failed")
    if status.get("reason") == "NonZeroExitCode":
        details = status.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        for cause in causes or ():
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    return ExitStatus(int(str(cause.get("message"))))
                except ValueError:
                    break
    return ExitStatus(None, message[:1024])


def exec_path(
    namespace: str,
    pod: str,
    container: str,
    command: list[str] | None,
    *,
    tty: bool,
    stdin: bool = True,
) -> str:
    """The path and query of an exec (``command`` given) or attach (``command`` None)."""
    query: list[tuple[str, str]] = [("command", arg) for arg in command or ()]
    query += [
        ("container", container),
        ("stdin", _flag(stdin)),
        ("stdout", "true"),
        # A terminal merges stderr into stdout; the server refuses both.
        ("stderr", _flag(not tty)),
        ("tty", _flag(tty)),
    ]
    verb = "exec" if command is not None else "attach"
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/{verb}"
    return f"{base}?{urlencode(query)}"


def _flag(value: bool) -> str:
    return "true" if value else "false"
