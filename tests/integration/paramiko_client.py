"""A paramiko client for the end-to-end tests, run as its own process (paramiko blocks).

Usage: ``python paramiko_client.py PORT KEY_FILE CIPHER MAC KEX SIZE RENEGOTIATE``.
It logs in as ``alice`` with the key, offering only the given algorithms,
runs ``cat; exit 3`` and sends SIZE random bytes as its stdin while a thread
reads them back. With RENEGOTIATE ``1`` it starts a new key exchange
(``Transport.renegotiate_keys``) between the two halves of the upload.
It prints one JSON line: the algorithms negotiated each way, the exit status,
whether the output equals the input, and every key exchange after the first
with who started it and how far the stream had got by then (bytes sent and
received), which tells a rekey in the middle of the stream from one before
or after it.

The whole run has a deadline (:data:`DEADLINE`): paramiko's
``renegotiate_keys`` waits without one, and a gateway that stops answering
must fail the test, not hang it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
from typing import Any

import paramiko

#: Seconds the whole run may take; then SIGALRM ends the process.
DEADLINE = 240
#: Bytes per write and per read on the channel.
CHUNK = 64 * 1024


class Progress:
    """How much of the stream went out and came back; shared by the writer and reader threads."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.echo = hashlib.sha256()
        self.error: BaseException | None = None


class RecordingTransport(paramiko.Transport):
    """A client transport that notes every key exchange after the first one."""

    def __init__(self, address: tuple[str, int], progress: Progress) -> None:
        super().__init__(address)
        self.progress = progress
        self.rekeys: list[dict[str, Any]] = []

    def _negotiate_keys(self, m: Any) -> None:
        # Called for the peer's KEXINIT. Without a KEXINIT of our own
        # outstanding, the server started this key exchange.
        if self.initial_kex_done:
            self.rekeys.append(
                {
                    "by": "server" if self.local_kex_init is None else "client",
                    "sent": self.progress.sent,
                    "received": self.progress.received,
                }
            )
        super()._negotiate_keys(m)


def read_all(channel: paramiko.Channel, progress: Progress) -> None:
    """Read the channel to its end, hashing what arrives (runs in its own thread)."""
    try:
        while chunk := channel.recv(CHUNK):
            progress.echo.update(chunk)
            progress.received += len(chunk)
    except BaseException as error:
        progress.error = error


def send(channel: paramiko.Channel, data: bytes, progress: Progress) -> None:
    for start in range(0, len(data), CHUNK):
        chunk = data[start : start + CHUNK]
        channel.sendall(chunk)
        progress.sent += len(chunk)


def main(
    port: int, key_file: str, cipher: str, mac: str, kex: str, size: int, renegotiate: bool
) -> None:
    signal.alarm(DEADLINE)
    data = os.urandom(size)
    progress = Progress()
    transport = RecordingTransport(("127.0.0.1", port), progress)
    options = transport.get_security_options()
    options.ciphers = (cipher,)
    options.digests = (mac,)
    options.kex = (kex,)
    transport.start_client(timeout=30)
    transport.auth_publickey("alice", paramiko.Ed25519Key.from_private_key_file(key_file))
    channel = transport.open_session(timeout=30)
    channel.settimeout(60)
    channel.exec_command("cat; exit 3")
    reader = threading.Thread(target=read_all, args=(channel, progress), daemon=True)
    reader.start()
    half = size // 2
    send(channel, data[:half], progress)
    if renegotiate:
        transport.renegotiate_keys()
    send(channel, data[half:], progress)
    channel.shutdown_write()
    reader.join(DEADLINE)
    if progress.error is not None:
        raise progress.error
    exit_status = channel.recv_exit_status()
    print(
        json.dumps(
            {
                "ciphers": [transport.local_cipher, transport.remote_cipher],
                "macs": [transport.local_mac, transport.remote_mac],
                "exit_status": exit_status,
                "echoed": progress.received == size
                and progress.echo.digest() == hashlib.sha256(data).digest(),
                "rekeys": transport.rekeys,
            }
        )
    )
    transport.close()


if __name__ == "__main__":
    port, key_file, cipher, mac, kex, size, renegotiate = sys.argv[1:]
    main(int(port), key_file, cipher, mac, kex, int(size), renegotiate == "1")
