"""X11 forwarding with paramiko as the client, run as its own process (paramiko blocks).

Usage: ``python paramiko_x11.py PORT KEY_FILE``.

It asks for X11 forwarding on a session, then runs a command that connects
to ``$DISPLAY`` in the container (busybox ``nc`` to TCP port 6000 + display)
and writes a line. That connection must arrive here as an ``x11`` channel,
carrying the line. Prints JSON: the DISPLAY the program saw, what the x11
channel carried, the command's exit status.
"""

from __future__ import annotations

import json
import queue
import signal
import sys
from typing import Any

import paramiko

#: Seconds the whole run may take; then SIGALRM ends the process.
DEADLINE = 60
COMMAND = (
    'echo "$DISPLAY"; d=${DISPLAY#localhost:}; d=${d%.*}; '
    "echo hello-x11 | nc 127.0.0.1 $((6000 + d))"
)


def main(port: int, key_file: str) -> None:
    signal.alarm(DEADLINE)
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.start_client(timeout=30)
    transport.auth_publickey("alice", paramiko.Ed25519Key.from_private_key_file(key_file))
    arrived: queue.Queue[Any] = queue.Queue()
    channel = transport.open_session(timeout=30)
    channel.settimeout(30)
    channel.request_x11(handler=lambda x11, origin: arrived.put((x11, origin)))
    channel.exec_command(COMMAND)
    x11, origin = arrived.get(timeout=30)
    x11.settimeout(30)
    carried = b""
    while not carried.endswith(b"\n"):
        chunk = x11.recv(1024)
        if not chunk:
            break
        carried += chunk
    x11.close()  # the X server hangs up: nc in the container ends
    output = b""
    while chunk := channel.recv(1024):
        output += chunk
    print(
        json.dumps(
            {
                "display": output.decode().splitlines()[0] if output else "",
                "carried": carried.decode(),
                "origin": list(origin),
                "exit_status": channel.recv_exit_status(),
            }
        )
    )
    transport.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
