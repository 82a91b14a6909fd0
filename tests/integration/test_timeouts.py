"""Idle and absolute time limits, seen through the real OpenSSH client.

The limits here are a few seconds long so the real clock can run them; the
steps in between, and long limits, are tested on a controlled clock in
tests.ssh.test_timeouts. The guest agent is enabled so that the timed-out
program really receives the signal (the client is sent the program's ``exit-signal``).
"""

from __future__ import annotations

import shlex
import sys
import time
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.gateway import SSH, GatewayTestCase

#: Writes a line a second for six seconds.
FEED_SIX_LINES = "import time\nfor i in range(6):\n    print(i, flush=True)\n    time.sleep(1)\n"


class _Limits(GatewayTestCase):
    timeout = 90
    session: dict[str, Any] = {}

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["docker"]["execution"]["disableAgent"] = False
        data["session"] = self.session
        return data

    def codes_in_order(self, *codes: str) -> list[str]:
        wanted = set(codes)
        return [code for code in self.logged_codes() if code in wanted]


class IdleTimeoutTests(_Limits):
    session = {"idleTimeout": "4s", "warning": "2s", "grace": "2s"}

    async def test_idle_program_without_terminal(self) -> None:
        """A silent program: the warning on stderr, then TERM ends it (the client
        is told the program died of it, and exits with 255)."""
        started = time.monotonic()
        _out, err, code = await self.ssh("sleep 60")
        took = time.monotonic() - started
        self.assertEqual(code, 255, err)
        [exited] = [r.details for r in self.log_records if r.code == "SSH_EXIT_SIGNAL"]
        self.assertEqual(exited["signal"], "TERM")
        self.assertIn(b"This connection has been idle; it will be closed in 2 seconds", err)
        self.assertLess(took, 30)
        self.assertEqual(
            self.codes_in_order("SSH_IDLE_WARNING", "SSH_IDLE_TIMEOUT"),
            ["SSH_IDLE_WARNING", "SSH_IDLE_TIMEOUT"],
        )

    async def test_idle_terminal_closed_after_grace(self) -> None:
        """With a terminal the warning is on it; a program that ignores the signal
        is cut off when the grace period ends, the client told why."""
        out, err, code = await self.ssh("trap '' TERM; sleep 60", "-tt", "-o", "LogLevel=INFO")
        self.assertEqual(code, 255, err)
        self.assertIn(b"This connection has been idle", out)
        self.assertIn(b"idle timeout", err)
        self.assertEqual(
            self.codes_in_order("SSH_IDLE_WARNING", "SSH_IDLE_TIMEOUT", "SSH_TIMEOUT_DISCONNECT"),
            ["SSH_IDLE_WARNING", "SSH_IDLE_TIMEOUT", "SSH_TIMEOUT_DISCONNECT"],
        )

    async def test_output_is_activity(self) -> None:
        """A program that prints every second outlives the idle timeout untouched."""
        out, err, code = await self.ssh("for i in 1 2 3 4 5 6; do echo $i; sleep 1; done")
        self.assertEqual((out, code), (b"1\n2\n3\n4\n5\n6\n", 0), err)
        self.assertNotIn(b"idle", err)
        self.assertNotIn("SSH_IDLE_WARNING", self.logged_codes())

    async def test_input_is_activity(self) -> None:
        """Input from the client counts too: a program fed a line a second,
        printing nothing until its input ends, is not cut off."""
        assert SSH is not None
        feeder = [sys.executable, "-c", FEED_SIX_LINES]
        pipeline = f"{shlex.join(feeder)} | {shlex.join([SSH, *self.ssh_args(), 'wc -l'])}"
        out, err, code = await getProcessOutputAndValue("/bin/sh", ["-c", pipeline])
        self.assertEqual((out.strip(), code), (b"6", 0), err)
        self.assertNotIn("SSH_IDLE_WARNING", self.logged_codes())


class TimeLimitTests(_Limits):
    session = {"maxSessionDuration": "3s", "warning": "2s", "grace": "1s"}

    async def test_busy_connection_is_ended(self) -> None:
        """However busy, the connection ends at maxSessionDuration, warned first."""
        started = time.monotonic()
        out, err, code = await self.ssh("while :; do echo tick; sleep 0.2; done")
        self.assertEqual(code, 255, err)
        self.assertIn("SSH_EXIT_SIGNAL", self.logged_codes())
        self.assertIn(b"time limit; it will be closed in 2 seconds", err)
        self.assertIn(b"tick", out)
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(
            self.codes_in_order("SSH_TIME_LIMIT_WARNING", "SSH_TIME_LIMIT_REACHED"),
            ["SSH_TIME_LIMIT_WARNING", "SSH_TIME_LIMIT_REACHED"],
        )
