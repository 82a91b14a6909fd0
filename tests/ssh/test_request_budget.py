"""How much work one client's channel requests can make: per channel and per connection.

The whole SSH server in memory with the fake backend, whose resizes and
signals take time on the clock (``operation_delay``), as a real engine call
does. Nothing here uses real time.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh import common, connection
from twisted.conch.ssh.transport import DISCONNECT_BY_APPLICATION, DISCONNECT_PROTOCOL_ERROR
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.pendingrequests import MAX_PENDING_REQUESTS
from tests.ssh.harness import (
    ClientChannel,
    Harness,
    env_request,
    exec_request,
    pty_request,
    request_result,
    window_change,
)

#: Seconds each resize and signal takes in the fake backend.
DELAY = 1.0


class BudgetTestCase(SynchronousTestCase):
    """A logged-in client with a long-running program on a terminal; signals are trapped."""

    def setUp(self) -> None:
        self.harness = Harness()
        self.harness.backend.operation_delay = DELAY
        self.harness.backend.trapped_signals = {"INT", "TERM", "USR1", "USR2", "HUP"}
        self.client = self.harness.login()
        self.channel = self.start_program()

    def start_program(self) -> ClientChannel:
        channel = self.harness.open_session(self.client)
        channel.request(b"pty-req", pty_request("xterm", 80, 25))
        started = channel.request(b"exec", exec_request("sleep 100000"))
        self.harness.flush()
        self.assertEqual(request_result(started), "ok")
        return channel

    def session(self) -> Any:
        return self.harness.backend.sessions[-1]

    def send(self, name: bytes, data: bytes, want_reply: bool = True) -> list[str]:
        """Send a request; the list gets ``ok`` or ``failed`` when its reply arrives."""
        outcome: list[str] = []
        d = self.channel.request(name, data, want_reply=want_reply)
        if d is not None:
            d.addCallbacks(lambda _: outcome.append("ok"), lambda _: outcome.append("failed"))
        return outcome

    def server_connection(self) -> Any:
        return self.client.server.service

    def failed_reasons(self) -> list[str]:
        return [e["reason"] for e in self.harness.events_with("SSH_CHANNEL_REQUEST_FAILED")]


class ResizeTests(BudgetTestCase):
    """``window-change``: one resize in flight; the newest size waits."""

    def test_only_the_newest_waiting_size_is_applied(self) -> None:
        """Sizes sent while a resize runs are overtaken by the newest, which is applied next."""
        replies = [self.send(b"window-change", window_change(100 + i, 30)) for i in range(4)]
        self.harness.flush()
        self.assertEqual(self.session().in_flight["resize"], 1)
        self.harness.advance(DELAY)
        self.harness.advance(DELAY)
        self.assertEqual(self.session().resizes, [(100, 30), (103, 30)])
        self.assertEqual(self.session().max_in_flight["resize"], 1)
        self.assertEqual(self.session().pty.columns, 103)
        self.assertEqual(replies, [["ok"]] * 4)

    def test_overtaken_sizes_are_answered_after_the_running_one(self) -> None:
        """Replies keep the order of the requests: an overtaken size is not answered first."""
        running = self.send(b"window-change", window_change(100, 30))
        overtaken = self.send(b"window-change", window_change(101, 30))
        self.send(b"window-change", window_change(102, 30))
        self.harness.flush()
        self.assertEqual((running, overtaken), ([], []))
        self.harness.advance(DELAY)
        self.assertEqual((running, overtaken), (["ok"], ["ok"]))
        self.harness.advance(DELAY)
        self.assertEqual(self.session().resizes, [(100, 30), (102, 30)])

    def test_resizes_without_replies(self) -> None:
        """Thousands of resizes without replies make two backend calls: the first and the last."""
        for i in range(2000):
            self.send(b"window-change", window_change(100 + i, 30), want_reply=False)
        self.harness.advance(3 * DELAY)
        self.assertEqual(self.session().resizes, [(100, 30), (2099, 30)])
        self.assertEqual(self.session().max_in_flight["resize"], 1)
        self.assertIsNone(self.client.disconnect_reason)


class SignalTests(BudgetTestCase):
    """``signal``: one delivery in flight, one more waits, any further one is refused."""

    def test_one_waits_the_next_is_refused(self) -> None:
        """INT runs, TERM waits and is delivered after it, USR1 is refused (after both replies)."""
        interrupt = self.send(b"signal", common.NS(b"INT"))
        terminate = self.send(b"signal", common.NS(b"TERM"))
        refused = self.send(b"signal", common.NS(b"USR1"))
        self.harness.flush()
        self.assertEqual((interrupt, terminate, refused), ([], [], []))
        self.harness.advance(DELAY)
        self.assertEqual((interrupt, terminate, refused), (["ok"], [], []))
        self.harness.advance(DELAY)
        self.assertEqual((interrupt, terminate, refused), (["ok"], ["ok"], ["failed"]))
        self.assertEqual(self.session().signals, ["INT", "TERM"])
        self.assertEqual(self.session().max_in_flight["signal"], 1)
        self.assertIn(
            "a signal is being delivered and another one is waiting", self.failed_reasons()
        )

    def test_a_slot_frees_when_a_delivery_ends(self) -> None:
        """Once the running delivery ends, a new signal may wait again."""
        self.send(b"signal", common.NS(b"INT"))
        self.send(b"signal", common.NS(b"TERM"))
        self.harness.flush()
        self.harness.advance(DELAY)
        later = self.send(b"signal", common.NS(b"HUP"))
        self.harness.advance(2 * DELAY)
        self.assertEqual(later, ["ok"])
        self.assertEqual(self.session().signals, ["INT", "TERM", "HUP"])
        self.assertEqual(self.session().max_in_flight["signal"], 1)

    def test_waiting_signal_after_the_program_ended(self) -> None:
        """A waiting signal is not delivered when the running one ended the program."""
        self.harness.backend.trapped_signals = set()
        self.send(b"signal", common.NS(b"KILL"))
        self.send(b"signal", common.NS(b"INT"))
        self.harness.advance(2 * DELAY)
        self.assertEqual(self.session().signals, ["KILL"])
        self.assertEqual(self.session().max_in_flight["signal"], 1)
        self.assertEqual(self.channel.exit_signal, ("KILL", False, ""))

    def test_signals_without_replies(self) -> None:
        """Thousands of signals without replies: one delivery at a time, the rest refused."""
        for _ in range(2000):
            self.send(b"signal", common.NS(b"INT"), want_reply=False)
        self.harness.advance(3 * DELAY)
        self.assertEqual(self.session().signals, ["INT", "INT"])
        self.assertEqual(self.session().max_in_flight["signal"], 1)
        self.assertIsNone(self.client.disconnect_reason)


class ReplyOrderTests(BudgetTestCase):
    """Replies on a channel follow the order of its requests."""

    def test_quick_failure_waits_for_slow_success(self) -> None:
        """An ``env`` refused at once is answered after the signal sent before it."""
        signal = self.send(b"signal", common.NS(b"INT"))
        env = self.send(b"env", env_request("LANG", "C"))
        self.harness.flush()
        self.assertEqual((signal, env), ([], []))
        self.harness.advance(DELAY)
        self.assertEqual((signal, env), (["ok"], ["failed"]))


class ConnectionBudgetTests(BudgetTestCase):
    """At most MAX_PENDING_REQUESTS unanswered channel requests per connection."""

    def pile_up(self, count: int) -> None:
        """``count`` resizes that all wait for the first (the engine call takes DELAY)."""
        for i in range(count):
            self.send(b"window-change", window_change(100 + i, 30))
        self.harness.flush()

    def test_up_to_the_bound(self) -> None:
        """A client with exactly the bound of unanswered requests stays connected."""
        self.pile_up(MAX_PENDING_REQUESTS)
        self.assertEqual(self.server_connection().pending_requests.count, MAX_PENDING_REQUESTS)
        self.assertIsNone(self.client.disconnect_reason)
        self.harness.advance(2 * DELAY)
        self.assertEqual(self.server_connection().pending_requests.count, 0)
        self.assertFalse(self.client.lost.called)

    def test_beyond_the_bound_disconnects(self) -> None:
        """One request more than the bound disconnects the client, logged with its code."""
        self.pile_up(MAX_PENDING_REQUESTS + 1)
        self.assertEqual(
            self.client.disconnect_reason,
            (DISCONNECT_BY_APPLICATION, "too many unanswered requests"),
        )
        self.assertTrue(self.client.lost.called)
        [event] = self.harness.events_with("SSH_CHANNEL_REQUESTS_FLOOD")
        self.assertEqual(event["maxPendingRequests"], MAX_PENDING_REQUESTS)
        self.assertEqual(self.session().max_in_flight["resize"], 1)

    def test_across_channels(self) -> None:
        """The bound counts the requests of all the connection's channels together."""
        first = self.channel
        self.channel = self.start_program()
        self.pile_up(MAX_PENDING_REQUESTS // 2)
        self.channel = first
        self.pile_up(MAX_PENDING_REQUESTS // 2)
        self.assertIsNone(self.client.disconnect_reason)
        self.send(b"signal", common.NS(b"INT"))
        self.harness.flush()
        self.assertIsNotNone(self.client.disconnect_reason)

    def test_closed_channel_stops_counting(self) -> None:
        """The requests of a closed channel no longer count against the connection."""
        self.pile_up(MAX_PENDING_REQUESTS - 1)
        self.channel.loseConnection()
        self.harness.flush()
        self.assertEqual(self.server_connection().pending_requests.count, 0)
        self.channel = self.start_program()
        self.pile_up(MAX_PENDING_REQUESTS - 1)
        self.assertIsNone(self.client.disconnect_reason)


class MalformedRequestTests(BudgetTestCase):
    """Channel requests the server cannot attribute are protocol errors."""

    def send_raw(self, payload: bytes) -> None:
        self.client.transport.sendPacket(connection.MSG_CHANNEL_REQUEST, payload)
        self.harness.flush()

    def test_unknown_channel(self) -> None:
        """A request for a channel that is not open disconnects with a protocol error."""
        self.send_raw(struct.pack(">L", 4242) + common.NS(b"signal") + b"\x00" + common.NS(b"INT"))
        self.assertEqual(
            self.client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, "unknown channel")
        )
        self.assertTrue(self.harness.events_with("SSH_DECODE_FAILED"))

    def test_truncated(self) -> None:
        """A request without its want-reply flag disconnects with a protocol error."""
        remote = self.client.connection.localToRemoteChannel[self.channel.id]
        self.send_raw(struct.pack(">L", remote) + common.NS(b"signal"))
        self.assertEqual(
            self.client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, "malformed channel request")
        )
