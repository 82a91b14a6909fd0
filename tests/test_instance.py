"""The instance id: unique among live gateways, taken over from a dead one.

Live holders are other claims in this process and real child processes
(one killed with ``SIGKILL``, one that forks and exits the way ``twistd``
daemonises), since what matters is what the kernel does with their locks.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from conch_container.instance import (
    InstanceClaim,
    InstanceStateError,
    claim_instance_id,
    claim_slot,
)
from conch_container.log.logger import CodeLogger

CHECKOUT = str(Path(__file__).resolve().parents[1])
HEX16 = re.compile(r"[0-9a-f]{16}")
NAME = "config.yaml"

#: Claims a slot, prints its id, and holds it until killed.
HOLDER = """
import sys, time
from conch_container.instance import claim_slot
claim = claim_slot(sys.argv[1], sys.argv[2])
print(claim.instance_id, flush=True)
time.sleep(3600)
"""

#: Claims a slot, then forks as ``twistd`` daemonises: the parent exits at
#: once, the child prints its pid and the id, and holds on until killed.
DAEMON = """
import os, sys, time
from conch_container.instance import claim_slot
claim = claim_slot(sys.argv[1], sys.argv[2])
if os.fork():
    os._exit(0)
os.setsid()
print(os.getpid(), claim.instance_id, flush=True)
sys.stdout.close()
time.sleep(3600)
"""


class ClaimSlotTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()

    def claim(self, **kwargs: Any) -> InstanceClaim:
        claim = claim_slot(self.dir.path, NAME, **kwargs)
        self.addCleanup(claim.release)
        return claim

    def slot(self, number: int) -> FilePath[str]:
        return self.dir.child(f"{NAME}.instance-{number}")

    def python(self, script: str, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": CHECKOUT}
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.addCleanup(_reap, process)
        return process

    def test_first_claim_keeps_a_new_id(self) -> None:
        """The first claim takes slot 0 and writes a new 16-hex-digit id there."""
        claim = self.claim()
        self.assertRegex(claim.instance_id, HEX16)
        self.assertEqual(claim.path, self.slot(0).path)
        self.assertEqual(self.slot(0).getContent(), f"{claim.instance_id}\n".encode())
        self.assertTrue(claim.held)

    def test_released_id_taken_over(self) -> None:
        """Once given up, the id is the next claim's: a restart finds its containers."""
        first = self.claim()
        first.release()
        self.assertFalse(first.held)
        again = self.claim()
        self.assertEqual((again.instance_id, again.path), (first.instance_id, first.path))

    def test_live_claims_differ(self) -> None:
        """Two claims held at once, in one directory, get different slots and ids."""
        first, second = self.claim(), self.claim()
        self.assertEqual((first.path, second.path), (self.slot(0).path, self.slot(1).path))
        self.assertNotEqual(first.instance_id, second.instance_id)

    def test_free_slot_taken_first(self) -> None:
        """A new claim takes a dead holder's slot before making a new one."""
        first, second = self.claim(), self.claim()
        first.release()
        third = self.claim()
        self.assertEqual(third.instance_id, first.instance_id)
        self.assertTrue(second.held)
        self.assertFalse(self.slot(2).exists())

    def test_killed_holder_id_taken_over(self) -> None:
        """A process holds its id until it is killed with SIGKILL; then the id is free."""
        holder = self.python(HOLDER, self.dir.path, NAME)
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        self.assertRegex(held, HEX16)
        alive = self.claim()
        self.assertNotEqual(alive.instance_id, held)
        alive.release()

        holder.send_signal(signal.SIGKILL)
        holder.wait()
        self.assertEqual(self.claim().instance_id, held)

    def test_lock_outlives_forking_parent(self) -> None:
        """A claim made before a daemonising fork stays held after the parent exits."""
        parent = self.python(DAEMON, self.dir.path, NAME)
        assert parent.stdout is not None
        pid_text, held = parent.stdout.readline().split()
        self.addCleanup(_kill_quietly, int(pid_text))
        self.assertEqual(parent.wait(), 0)
        self.assertNotEqual(self.claim().instance_id, held)

    def test_unreadable_id_replaced(self) -> None:
        """A slot file whose text is not an id (a write cut short) gets a new id."""
        self.slot(0).setContent(b"0123")
        claim = self.claim(new_id=lambda: "00000000000000ff")
        self.assertEqual(claim.instance_id, "00000000000000ff")
        self.assertEqual(self.slot(0).getContent(), b"00000000000000ff\n")

    def test_symlink_not_followed(self) -> None:
        """A symbolic link at a slot's name is refused, and its target left as it was."""
        target = self.dir.child("target")
        target.setContent(b"precious")
        os.symlink(target.path, self.slot(0).path)
        with self.assertRaises(InstanceStateError):
            self.claim()
        self.assertEqual(target.getContent(), b"precious")

    def test_directory_cannot_be_made(self) -> None:
        """A state directory that cannot exist (under a regular file) is an error."""
        blocker = self.dir.child("file")
        blocker.setContent(b"")
        with self.assertRaises(InstanceStateError) as raised:
            claim_slot(blocker.child("state").path, NAME)
        self.assertIn("cannot create", str(raised.exception))

    def test_missing_directory_made(self) -> None:
        """A state directory that does not exist yet is created."""
        state = self.dir.child("a").child("b")
        claim = claim_slot(state.path, NAME)
        self.addCleanup(claim.release)
        self.assertTrue(state.child(f"{NAME}.instance-0").exists())

    def test_every_slot_taken(self) -> None:
        """With every slot held by a live claim, there is nothing to claim."""
        self.claim(max_slots=2)
        self.claim(max_slots=2)
        with self.assertRaises(InstanceStateError) as raised:
            self.claim(max_slots=2)
        self.assertIn("all 2 slots", str(raised.exception))


class ClaimInstanceIdTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.config = self.dir.child(NAME)
        self.config.setContent(b"{}\n")
        self.events: list[dict[str, Any]] = []
        self.log = CodeLogger("tests.instance", observer=self.events.append)  # type: ignore[arg-type]

    def claim(self, state_dir: str | None) -> InstanceClaim:
        claim = claim_instance_id(self.config.path, state_dir, self.log)
        self.addCleanup(claim.release)
        return claim

    def coded(self) -> list[dict[str, Any]]:
        return [e for e in self.events if "code" in e]

    def test_kept_next_to_configuration(self) -> None:
        """By default the id is kept beside the configuration file and logged with its file."""
        claim = self.claim(None)
        self.assertEqual(claim.path, self.dir.child(f"{NAME}.instance-0").path)
        [event] = self.coded()
        self.assertEqual(event["code"], "CORE_INSTANCE_ID")
        self.assertEqual((event["instanceId"], event["file"]), (claim.instance_id, claim.path))

    def test_state_directory(self) -> None:
        """A state directory, when given, keeps the slot files instead."""
        state = self.dir.child("state")
        claim = self.claim(state.path)
        self.assertEqual(claim.path, state.child(f"{NAME}.instance-0").path)
        self.assertFalse(self.dir.child(f"{NAME}.instance-0").exists())

    def test_unusable_directory(self) -> None:
        """Without a usable directory: a random id for this run only, and a warning that says so."""
        blocker = self.dir.child("file")
        blocker.setContent(b"")
        unusable = blocker.child("state").path
        first, second = self.claim(unusable), self.claim(unusable)
        self.assertRegex(first.instance_id, HEX16)
        self.assertNotEqual(first.instance_id, second.instance_id)
        self.assertIsNone(first.path)
        self.assertFalse(first.held)
        warnings = self.coded()
        self.assertEqual([e["code"] for e in warnings], ["CORE_INSTANCE_ID_NOT_KEPT"] * 2)
        self.assertEqual(warnings[0]["cs_level"].label, "warning")
        self.assertEqual(warnings[0]["instanceId"], first.instance_id)
        self.assertIn("cannot create", warnings[0]["reason"])


def _reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
