"""SFTP and SCP through the gateway with the real OpenSSH clients.

``sftp`` and ``scp`` (OpenSSH 9.2, whose ``scp`` speaks the SFTP protocol by
default) move a 50 MiB random file into and out of a real container through
the gateway's ``sftp`` subsystem, which runs the image's
``/usr/lib/openssh/sftp-server`` (the default ``subsystems`` setting). Every
transfer is checked by SHA-256 against the file on the other side:

* within one SFTP session, a file is uploaded to the container's ``/tmp``
  and downloaded again;
* each direction on its own, to or from a host directory bind-mounted at
  ``/tmp/transfer`` in the container, so the upload is checked where it
  landed and the download starts from a file the test wrote. Every case uses
  a single channel, so it holds for one container per channel as well as for
  one container per connection.

The transfer times are printed (``transfer: ...`` lines), not asserted.

Legacy ``scp -O`` runs ``scp -t``/``scp -f`` in the container through
``exec``; the guest image has no ``scp`` program, so that mode can only fail,
and the test checks that it fails cleanly.

:class:`SessionModeTransferTests` runs the same cases with
``docker.execution.mode: session``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from tests.integration.gateway import SSH, GatewayTestCase, reactor

SFTP = shutil.which("sftp")
SCP = shutil.which("scp")
#: The size of the files moved (50 MiB).
SIZE = 50 * 2**20
#: Where the host's transfer directory appears in the container.
MOUNTED = "/tmp/transfer"


class _TimedRun(protocol.ProcessProtocol):
    """Runs a client, noting when each line of its stdout arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.err = b""
        self.started = reactor.seconds()
        self.finished = self.started
        #: The exit status (-1 for a signal), once the process has ended.
        self.code: int | None = None
        self.ended: Deferred[None] = Deferred()
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        now = reactor.seconds()
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend((now, line) for line in complete)

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.finished = reactor.seconds()
        if self._partial:
            self.lines.append((self.finished, self._partial))
        code = getattr(reason.value, "exitCode", None)
        self.code = code if code is not None else -1
        self.ended.callback(None)

    @property
    def output(self) -> bytes:
        return b"\n".join(line for _, line in self.lines)

    def echoed_at(self, command: bytes) -> float:
        """When batch-mode ``sftp`` echoed ``command`` (it had finished the one before)."""
        for when, line in self.lines:
            if line.startswith(b"sftp> " + command):
                return when
        raise AssertionError(f"sftp did not echo {command!r}: {self.output!r}")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _report(what: str, seconds: float) -> None:
    rate = SIZE / 2**20 / seconds if seconds > 0 else float("inf")
    print(f"transfer: {what}: {SIZE / 2**20:.0f} MiB in {seconds:.2f} s ({rate:.1f} MiB/s)")


class TransferTests(GatewayTestCase):
    """SFTP and SCP in both directions (one container per connection)."""

    timeout = 300
    #: ``docker.execution.mode`` for this class's gateway.
    mode = "connection"
    #: The code logged when a channel's program starts in this mode.
    program_code = "DOCKER_EXEC_CREATE"

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        if SFTP is None or SCP is None:
            self.fail("the OpenSSH sftp and scp clients are required")
        return super().setUp()

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        self.transfer_dir = self.dir.child("transfer")
        self.transfer_dir.makedirs(ignoreExistingDirectory=True)
        execution = data["docker"]["execution"]
        execution["mode"] = self.mode
        execution["host"] = {"binds": [f"{self.transfer_dir.path}:{MOUNTED}"]}
        return data

    # -- helpers

    def random_file(self, path: str) -> str:
        """Write SIZE random bytes to ``path``; returns their SHA-256."""
        data = os.urandom(SIZE)
        with open(path, "wb") as f:
            f.write(data)
        return hashlib.sha256(data).hexdigest()

    def client_args(self) -> tuple[list[str], str]:
        """Options for sftp/scp (which take the port as ``-P``) and the ``user@host``."""
        args = self.ssh_args()
        destination = args.pop()
        args[args.index("-p")] = "-P"
        return args, destination

    async def spawn(self, executable: str | None, argv: list[str], stdin: bytes = b"") -> _TimedRun:
        assert executable is not None
        run = _TimedRun()
        transport = reactor.spawnProcess(
            run,
            executable,
            [executable, *argv],
            env=dict(os.environ),
            childFDs={0: "w", 1: "r", 2: "r"},
        )
        transport.write(stdin)
        transport.closeStdin()
        await run.ended
        return run

    async def sftp_batch(self, *commands: str) -> _TimedRun:
        """Run ``sftp`` in batch mode (it echoes each command as it starts it)."""
        args, destination = self.client_args()
        return await self.spawn(
            SFTP, [*args, "-b", "-", destination], "".join(c + "\n" for c in commands).encode()
        )

    async def scp(self, *argv: str) -> _TimedRun:
        args, _ = self.client_args()
        return await self.spawn(SCP, [*args, *argv])

    def remote(self, path: str) -> str:
        return f"{self.client_args()[1]}:{path}"

    # -- SFTP

    async def test_sftp_round_trip(self) -> None:
        """One SFTP session uploads 50 MiB into the container and downloads it unchanged."""
        source = self.dir.child("up.bin").path
        digest = self.random_file(source)
        back = self.dir.child("back.bin").path
        run = await self.sftp_batch(
            f"put {source} /tmp/up.bin",
            "ls -l /tmp/up.bin",
            f"get /tmp/up.bin {back}",
            "rm /tmp/up.bin",
        )
        self.assertEqual(run.code, 0, run.err)
        self.assertIn(f" {SIZE} ".encode(), run.output)
        self.assertEqual(_sha256(back), digest)
        self.assertIn(self.program_code, self.logged_codes())
        put_started = run.echoed_at(b"put ")
        get_started = run.echoed_at(b"get ")
        _report(f"sftp put ({self.mode} mode)", run.echoed_at(b"ls ") - put_started)
        _report(f"sftp get ({self.mode} mode)", run.echoed_at(b"rm ") - get_started)

    async def test_sftp_upload(self) -> None:
        """An SFTP upload lands byte for byte where the container stored it."""
        source = self.dir.child("up.bin").path
        digest = self.random_file(source)
        run = await self.sftp_batch(f"put {source} {MOUNTED}/uploaded.bin")
        self.assertEqual(run.code, 0, run.err)
        self.assertEqual(_sha256(self.transfer_dir.child("uploaded.bin").path), digest)
        _report(f"sftp upload, whole session ({self.mode} mode)", run.finished - run.started)

    async def test_sftp_download(self) -> None:
        """An SFTP download delivers the container's file byte for byte."""
        digest = self.random_file(self.transfer_dir.child("down.bin").path)
        target = self.dir.child("down.bin").path
        run = await self.sftp_batch(f"get {MOUNTED}/down.bin {target}")
        self.assertEqual(run.code, 0, run.err)
        self.assertEqual(_sha256(target), digest)
        _report(f"sftp download, whole session ({self.mode} mode)", run.finished - run.started)

    # -- SCP over SFTP (the OpenSSH 9 default)

    async def test_scp_upload(self) -> None:
        """``scp`` uploads 50 MiB unchanged (over SFTP)."""
        source = self.dir.child("up.bin").path
        digest = self.random_file(source)
        run = await self.scp(source, self.remote(f"{MOUNTED}/scp-up.bin"))
        self.assertEqual(run.code, 0, run.err)
        self.assertEqual(_sha256(self.transfer_dir.child("scp-up.bin").path), digest)
        _report(f"scp upload, whole run ({self.mode} mode)", run.finished - run.started)

    async def test_scp_download(self) -> None:
        """``scp`` downloads 50 MiB unchanged (over SFTP)."""
        digest = self.random_file(self.transfer_dir.child("scp-down.bin").path)
        target = self.dir.child("scp-down.bin").path
        run = await self.scp(self.remote(f"{MOUNTED}/scp-down.bin"), target)
        self.assertEqual(run.code, 0, run.err)
        self.assertEqual(_sha256(target), digest)
        _report(f"scp download, whole run ({self.mode} mode)", run.finished - run.started)

    async def test_legacy_scp_fails_cleanly(self) -> None:
        """``scp -O`` needs an ``scp`` program in the container; without one it fails cleanly."""
        source = self.dir.child("small.bin")
        source.setContent(b"small")
        run = await self.scp("-O", source.path, self.remote(f"{MOUNTED}/legacy.bin"))
        self.assertEqual(run.code, 1, run.err)
        self.assertIn(b"scp: not found", run.err)
        self.assertFalse(self.transfer_dir.child("legacy.bin").exists())

    # -- subsystems

    async def test_unknown_subsystem_refused(self) -> None:
        """A subsystem that is not configured gets a failure reply and is logged; nothing runs.

        OpenSSH reports the failed subsystem request and exits 255, as against
        an OpenSSH server without that subsystem.
        """
        args = self.ssh_args("-s")
        run = await self.spawn(SSH, [*args, "no-such-subsystem"])
        self.assertEqual(run.code, 255, run.err)
        self.assertIn(b"subsystem request failed", run.err)
        self.assertNotIn(b"Subsystem not supported.", run.err)
        self.assertIn("DOCKER_SUBSYSTEM_NOT_SUPPORTED", self.logged_codes())
        self.assertNotIn(self.program_code, self.logged_codes())


class SessionModeTransferTests(TransferTests):
    """The same transfers with one container per session channel."""

    mode = "session"
    program_code = "DOCKER_CONTAINER_ATTACH"
