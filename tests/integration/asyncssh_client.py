"""An AsyncSSH client for the end-to-end tests, run as its own process (AsyncSSH needs asyncio).

Usage: ``python asyncssh_client.py PORT KEY_FILE CIPHER MAC KEX SIZE REKEY_BYTES``.
It logs in as ``alice`` with the key, offering only the given algorithms,
runs ``cat; exit 3`` and streams SIZE random bytes into it while reading
them back. With REKEY_BYTES above 0 the client starts a new key exchange
each time it sent that many bytes (AsyncSSH's ``rekey_bytes``); with 0 it
keeps AsyncSSH's default (1 GB), far beyond the stream.

It prints one JSON line: the ciphers and MACs negotiated each way, the exit status,
whether the output equals the input, and every key exchange after the first
with how much of the stream had gone out and come back when the client
received the other end's KEXINIT (from AsyncSSH's debug log). AsyncSSH's
log does not tell who began an exchange; which end has a limit within the
stream does. The key exchange is the only one offered, so a login means it
was the one used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
from typing import Any

import asyncssh

#: Seconds the whole run may take.
DEADLINE = 240
#: Bytes per write and per read on the channel.
CHUNK = 64 * 1024
#: What AsyncSSH logs at debug level 1 when the other end's KEXINIT arrives.
KEXINIT_RECEIVED = "Received key exchange request"


class Progress(logging.Handler):
    """How much of the stream went out and came back, noted at every key exchange."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sent = 0
        self.received = 0
        self.key_exchanges: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if KEXINIT_RECEIVED in record.getMessage():
            self.key_exchanges.append({"sent": self.sent, "received": self.received})


async def echo(connection: asyncssh.SSHClientConnection, data: bytes, progress: Progress) -> Any:
    """Stream ``data`` through ``cat; exit 3``; the process's exit status and output digest."""
    process = await connection.create_process("cat; exit 3", encoding=None)
    digest = hashlib.sha256()

    async def read_all() -> None:
        while chunk := await process.stdout.read(CHUNK):
            digest.update(chunk)
            progress.received += len(chunk)

    reader = asyncio.ensure_future(read_all())
    for start in range(0, len(data), CHUNK):
        chunk = data[start : start + CHUNK]
        process.stdin.write(chunk)
        await process.stdin.drain()
        progress.sent += len(chunk)
    process.stdin.write_eof()
    await reader
    completed = await process.wait()
    return completed.exit_status, digest.digest()


async def main(
    port: int, key_file: str, cipher: str, mac: str, kex: str, size: int, rekey_bytes: int
) -> None:
    progress = Progress()
    logger = logging.getLogger("asyncssh")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(progress)
    asyncssh.set_debug_level(1)
    data = os.urandom(size)
    limits: dict[str, Any] = {"rekey_bytes": rekey_bytes} if rekey_bytes > 0 else {}
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username="alice",
        client_keys=[key_file],
        known_hosts=None,
        agent_path=None,
        config=[],
        encryption_algs=[cipher],
        mac_algs=[mac],
        kex_algs=[kex],
        connect_timeout=30,
        **limits,
    ) as connection:
        exit_status, digest = await echo(connection, data, progress)
        print(
            json.dumps(
                {
                    "ciphers": [
                        connection.get_extra_info("send_cipher"),
                        connection.get_extra_info("recv_cipher"),
                    ],
                    "macs": [
                        connection.get_extra_info("send_mac"),
                        connection.get_extra_info("recv_mac"),
                    ],
                    "exit_status": exit_status,
                    "echoed": progress.received == size and digest == hashlib.sha256(data).digest(),
                    "rekeys": progress.key_exchanges[1:],
                }
            )
        )


if __name__ == "__main__":
    port, key_file, cipher, mac, kex, size, rekey_bytes = sys.argv[1:]
    asyncio.run(
        asyncio.wait_for(
            main(int(port), key_file, cipher, mac, kex, int(size), int(rekey_bytes)),
            timeout=DEADLINE,
        )
    )
