"""The gateway's memory stays bounded when either side of a session is slow.

The real gateway runs in this process (see :mod:`tests.integration.gateway`),
so its resident set size is this process's: it is sampled while a large
upload goes to a program that reads nothing for a while, and while a client
that announced the largest window stops reading its socket. Without flow
control the gateway would hold the whole upload, or the whole download; the
bound asserted is a fraction of either (resident size is a measurement of
memory, not of time: the samples only have to cover the transfer).
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.conch.ssh import keys
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.gateway import GatewayTestCase, reactor
from tests.ssh.harness import Client, ClientChannel, exec_request

MB = 1_000_000
UPLOAD_SIZE = 100 * MB
DOWNLOAD_SIZE = 200 * MB
#: Generous next to the transfers (100 and 200 MB) the gateway would otherwise hold.
GROWTH_BOUND = 48 * MB
#: The largest window RFC 4254 allows.
LARGEST_WINDOW = 2**32 - 1


def resident_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class ResidentPeak:
    """Samples the resident size on the reactor; :attr:`growth` is the peak over the start."""

    def __init__(self) -> None:
        self.start = resident_bytes()
        self.peak = self.start
        self._loop = task.LoopingCall(self.sample)
        self._loop.clock = reactor
        self._loop.start(0.05)

    def sample(self) -> None:
        self.peak = max(self.peak, resident_bytes())

    def stop(self) -> int:
        """Stop sampling; the growth seen."""
        self.sample()
        if self._loop.running:
            self._loop.stop()
        return self.growth

    @property
    def growth(self) -> int:
        return self.peak - self.start


class UploadTests(GatewayTestCase):
    """Stdin waits in the client, not in the gateway, while the program does not read."""

    async def upload_to_slow_reader(self) -> tuple[bytes, int, int]:
        argv = " ".join(self.ssh_args())
        command = f"head -c {UPLOAD_SIZE} /dev/zero | ssh {argv} 'sleep 5; wc -c'"
        peak = ResidentPeak()
        try:
            out, err, code = await getProcessOutputAndValue(
                "/bin/sh", ["-c", command], env=dict(os.environ)
            )
        finally:
            growth = peak.stop()
        self.assertEqual((out.strip(), code), (str(UPLOAD_SIZE).encode(), 0), err)
        print(f"\n  upload of {UPLOAD_SIZE} bytes to a slow reader: gateway grew {growth} bytes")
        return out, code, growth

    async def test_upload_to_a_slow_exec(self) -> None:
        """A 100 MB upload to ``sleep 5; wc -c`` costs the gateway far less than 100 MB."""
        _, _, growth = await self.upload_to_slow_reader()
        self.assertLess(growth, GROWTH_BOUND)


class SessionModeUploadTests(UploadTests):
    """The same in Docker session mode (the program is the container's, attached)."""

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        execution = {**data["docker"]["execution"], "mode": "session"}
        data["docker"] = {**data["docker"], "execution": execution}
        return data


class DownloadTests(GatewayTestCase):
    """A client with the largest window that stops reading costs the gateway little."""

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        # Honour the client's window in full: what is measured is the pause
        # on the socket, not the cap on windows.
        data["ssh"] = {**data["ssh"], "maxWindowSize": LARGEST_WINDOW}
        return data

    async def stalled_client(self) -> tuple[Client, ClientChannel]:
        """A Conch client, logged in, whose session channel announced the largest window."""
        client = Client("alice", [], [keys.Key.fromString(self.client_pem)])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, client.transport)
        self.addCleanup(self.disconnect, client)
        connection = await client.authenticated
        channel = ClientChannel(localWindow=LARGEST_WINDOW, conn=connection)
        connection.openChannel(channel)
        await channel.opened
        return client, channel

    async def disconnect(self, client: Client) -> None:
        transport: Any = client.transport.transport
        if transport is not None and not client.lost.called:
            transport.abortConnection()
            await client.lost

    async def test_stalled_client_with_the_largest_window(self) -> None:
        """200 MB to a client that stops reading: the gateway grows by far less.

        Meanwhile another connection downloads at full speed.
        """
        client, channel = await self.stalled_client()
        peak = ResidentPeak()
        started = channel.request(b"exec", exec_request(f"head -c {DOWNLOAD_SIZE} /dev/zero"))
        # Once the reply is in, stop reading the socket: the kernel buffers
        # fill, then the gateway would.
        socket_transport: Any = client.transport.transport
        started.addCallback(lambda _: socket_transport.pauseProducing())
        await started
        other = Deferred.fromCoroutine(self.download_elsewhere(50 * MB))
        await task.deferLater(reactor, 8)
        elapsed = await other
        growth = peak.stop()
        print(
            f"\n  stalled client, {DOWNLOAD_SIZE} bytes pending: gateway grew {growth} bytes;"
            f" another connection downloaded 50 MB in {elapsed:.2f} s"
        )
        self.assertLess(growth, GROWTH_BOUND)
        self.assertLess(len(channel.stdout), DOWNLOAD_SIZE)

    async def download_elsewhere(self, size: int) -> float:
        """Download ``size`` bytes on a connection of its own; the time it took."""
        argv = " ".join(self.ssh_args())
        started = time.monotonic()
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh",
            ["-c", f"ssh {argv} 'head -c {size} /dev/zero' | wc -c"],
            env=dict(os.environ),
        )
        self.assertEqual((out.strip(), code), (str(size).encode(), 0), err)
        return time.monotonic() - started
