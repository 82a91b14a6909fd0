"""An AsyncSSH client for the end-to-end tests, run as its own process (AsyncSSH needs asyncio).

Usage: ``python asyncssh_client.py PORT KEY_FILE CIPHER MAC KEX SIZE``. It logs
in as ``alice`` with the key, offering only the given algorithms, runs
``cat; exit 3`` with SIZE random bytes as stdin, and prints one JSON line:
the ciphers negotiated each way, the exit status, and whether the output
equals the input. The key exchange is the only one offered, so a login means
it was the one used.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncssh


async def main(port: int, key_file: str, cipher: str, mac: str, kex: str, size: int) -> None:
    data = os.urandom(size)
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
    ) as connection:
        result = await asyncio.wait_for(
            connection.run("cat; exit 3", input=data, encoding=None), timeout=120
        )
        print(
            json.dumps(
                {
                    "ciphers": [
                        connection.get_extra_info("send_cipher"),
                        connection.get_extra_info("recv_cipher"),
                    ],
                    "exit_status": result.exit_status,
                    "echoed": result.stdout == data,
                }
            )
        )


if __name__ == "__main__":
    port, key_file, cipher, mac, kex, size = sys.argv[1:]
    asyncio.run(main(int(port), key_file, cipher, mac, kex, int(size)))
