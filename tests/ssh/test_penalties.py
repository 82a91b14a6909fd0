"""``ssh.perSourcePenalties``: source networks whose connections do not log in are refused."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import attrs
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.internet.address import IPv6Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container.codes import Level
from conch_container.config import parse_config
from conch_container.config.errors import ConfigError
from conch_container.config.preauth import PerSourcePenaltiesConfig, parse_net_block_size
from conch_container.ssh.factory import carries_credential
from conch_container.ssh.penalties import Offence, PenaltyBox, PenaltyPolicy, PenaltyRefusal
from conch_container.ssh.sources import ExemptList, SourceNetworks, client_ip
from tests.ssh.harness import (
    OTHER_KEY,
    Authenticators,
    Harness,
    Passwords,
    collecting_log,
    make_config,
)
from tests.ssh.preauth_support import connect_from, leave

ATTACKER = ip_address("203.0.113.7")
NEIGHBOUR = ip_address("203.0.113.8")


class Box:
    """A penalty box on a clock, with its log."""

    def __init__(
        self, networks: tuple[int, int] = (32, 64), exempt: tuple[str, ...] = (), **policy: Any
    ) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        config = attrs.evolve(PerSourcePenaltiesConfig(), exempt=exempt, **policy)
        self.box = PenaltyBox(
            PenaltyPolicy.from_config(config),
            SourceNetworks(*networks),
            ExemptList(config.exempt),
            self.clock,
            collecting_log(self.events),
        )

    def offend(self, ip: Any, offence: Offence = Offence.AUTH_FAIL, times: int = 1) -> None:
        for _ in range(times):
            self.box.penalise(ip, offence)

    def codes(self, code: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("code") == code]


class AccrualTests(SynchronousTestCase):
    """How penalty time adds up, runs down and is enforced (OpenSSH's defaults)."""

    def test_single_failure_not_enforced(self) -> None:
        """One failed login owes 5 s, below the 15 s threshold: nothing is refused."""
        box = Box()
        box.offend(ATTACKER)
        self.assertEqual(box.box.owed(ATTACKER), 5.0)
        self.assertIsNone(box.box.refusal(ATTACKER))

    def test_repeated_failures_enforced(self) -> None:
        """Three failures owe 15 s (not more than min); the fourth activates the penalty."""
        box = Box()
        box.offend(ATTACKER, times=3)
        self.assertIsNone(box.box.refusal(ATTACKER))
        box.offend(ATTACKER)
        self.assertIs(box.box.refusal(ATTACKER), PenaltyRefusal.PENALISED)
        self.assertIsNone(box.box.refusal(NEIGHBOUR))
        [event] = box.codes("SSH_PENALTY_ACTIVATED")
        self.assertEqual(event["source"], "203.0.113.7/32")
        self.assertEqual(event["seconds"], 20.0)
        self.assertEqual(event["cs_level"], Level.INFO)

    def test_activated_once(self) -> None:
        """Offences while a penalty is in force extend it without logging again."""
        box = Box()
        box.offend(ATTACKER, times=10)
        self.assertEqual(len(box.codes("SSH_PENALTY_ACTIVATED")), 1)
        self.assertEqual(box.box.owed(ATTACKER), 50.0)

    def test_runs_down(self) -> None:
        """An enforced penalty lasts until the time owed has run out, then is forgotten."""
        box = Box()
        box.offend(ATTACKER, times=4)
        box.clock.advance(19.9)
        self.assertAlmostEqual(box.box.owed(ATTACKER), 0.1)
        self.assertIs(box.box.refusal(ATTACKER), PenaltyRefusal.PENALISED)
        box.clock.advance(0.2)
        self.assertIsNone(box.box.refusal(ATTACKER))
        self.assertEqual(box.box.tracked(4), 0)

    def test_spaced_failures_never_add_up(self) -> None:
        """Failures further apart than their penalty are each forgotten before the next."""
        box = Box()
        for _ in range(100):
            box.offend(ATTACKER)
            box.clock.advance(6)
        self.assertIsNone(box.box.refusal(ATTACKER))
        self.assertEqual(box.codes("SSH_PENALTY_ACTIVATED"), [])

    def test_capped_at_max(self) -> None:
        """However many offences, no network owes more than ``max``."""
        box = Box()
        box.offend(ATTACKER, times=1000)
        self.assertEqual(box.box.owed(ATTACKER), 600.0)
        box.clock.advance(600.1)
        self.assertIsNone(box.box.refusal(ATTACKER))

    def test_penalty_above_min_enforced_at_once(self) -> None:
        """A single penalty longer than ``min`` is enforced from the first offence."""
        box = Box(grace_exceeded=20.0)
        box.offend(ATTACKER, Offence.GRACE_EXCEEDED)
        self.assertIs(box.box.refusal(ATTACKER), PenaltyRefusal.PENALISED)

    def test_durations_per_offence(self) -> None:
        """``noAuth`` 1 s, ``graceExceeded`` 10 s, ``authFail`` 5 s by default."""
        box = Box()
        box.offend(ip_address("192.0.2.1"), Offence.NO_AUTH)
        box.offend(ip_address("192.0.2.2"), Offence.GRACE_EXCEEDED)
        box.offend(ip_address("192.0.2.3"), Offence.AUTH_FAIL)
        owed = [box.box.owed(ip_address(f"192.0.2.{n}")) for n in (1, 2, 3)]
        self.assertEqual(owed, [1.0, 10.0, 5.0])

    def test_zero_turns_an_offence_off(self) -> None:
        """A duration of 0 means that offence costs nothing (not the default)."""
        config = parse_config({"ssh": {"perSourcePenalties": {"noAuth": "0s"}}})
        self.assertEqual(config.ssh.per_source_penalties.no_auth, 0.0)
        box = Box(no_auth=0.0)
        box.offend(ATTACKER, Offence.NO_AUTH, times=100)
        self.assertEqual(box.box.tracked(4), 0)


class NetworkTests(SynchronousTestCase):
    """Addresses grouped into networks, and exempt ones."""

    def test_default_blocks(self) -> None:
        """IPv4 addresses count one by one; IPv6 ones by /64."""
        box = Box(grace_exceeded=20.0)
        box.offend(ip_address("192.0.2.1"), Offence.GRACE_EXCEEDED)
        box.offend(ip_address("2001:db8:1:2::1"), Offence.GRACE_EXCEEDED)
        self.assertIsNone(box.box.refusal(ip_address("192.0.2.2")))
        self.assertIsNotNone(box.box.refusal(ip_address("2001:db8:1:2:ffff::9")))
        self.assertIsNone(box.box.refusal(ip_address("2001:db8:1:3::1")))

    def test_configured_blocks(self) -> None:
        """With ``24:48``, a whole /24 and a whole /48 share one penalty."""
        box = Box(networks=parse_net_block_size("24:48"), grace_exceeded=20.0)
        box.offend(ip_address("198.51.100.1"), Offence.GRACE_EXCEEDED)
        box.offend(ip_address("2001:db8:1::1"), Offence.GRACE_EXCEEDED)
        self.assertIsNotNone(box.box.refusal(ip_address("198.51.100.200")))
        self.assertIsNone(box.box.refusal(ip_address("198.51.101.1")))
        self.assertIsNotNone(box.box.refusal(ip_address("2001:db8:1:ffff::1")))
        self.assertIsNone(box.box.refusal(ip_address("2001:db8:2::1")))
        [event, _] = box.codes("SSH_PENALTY_ACTIVATED")
        self.assertEqual(event["source"], "198.51.100.0/24")

    def test_ipv4_mapped(self) -> None:
        """An IPv4 client seen by a dual-stack listener counts as its IPv4 address."""
        ip = client_ip(IPv6Address("TCP", "::ffff:198.51.100.9", 2222))
        self.assertEqual(ip, ip_address("198.51.100.9"))

    def test_exempt(self) -> None:
        """Exempt addresses and networks are neither penalised nor refused."""
        box = Box(exempt=("192.0.2.0/24", "2001:db8::/32", "198.51.100.7"), grace_exceeded=20.0)
        for text in ("192.0.2.99", "2001:db8:5::1", "198.51.100.7"):
            box.offend(ip_address(text), Offence.GRACE_EXCEEDED, times=10)
            self.assertIsNone(box.box.refusal(ip_address(text)))
        self.assertEqual((box.box.tracked(4), box.box.tracked(6)), (0, 0))
        box.offend(ip_address("198.51.100.8"), Offence.GRACE_EXCEEDED)
        self.assertIsNotNone(box.box.refusal(ip_address("198.51.100.8")))

    def test_block_size_setting(self) -> None:
        """``bits4[:bits6]``; a bare IPv4 size keeps the IPv6 default; bounds are checked."""
        self.assertEqual(parse_net_block_size("24:56"), (24, 56))
        self.assertEqual(parse_net_block_size("24"), (24, 64))
        for text, fragment in {
            "7": "IPv4",
            "33:64": "IPv4",
            "32:15": "IPv6",
            "x": "ipv4bits",
        }.items():
            with self.assertRaises(ConfigError, msg=text) as caught:
                parse_config({"ssh": {"perSourceNetBlockSize": text}})
            self.assertIn("ssh.perSourceNetBlockSize", str(caught.exception))
            self.assertIn(fragment, str(caught.exception))


class OverflowTests(SynchronousTestCase):
    """A bounded table: what happens when more networks offend than it holds."""

    def fill(self, box: Box) -> None:
        box.offend(ip_address("192.0.2.1"), Offence.AUTH_FAIL)  # 5 s
        box.offend(ip_address("192.0.2.2"), Offence.GRACE_EXCEEDED)  # 10 s

    def test_permissive_forgets_the_soonest(self) -> None:
        """``permissive``: the table keeps its size by forgetting what expires first."""
        box = Box(max_sources=2)
        self.fill(box)
        box.offend(ip_address("192.0.2.3"), Offence.NO_AUTH)  # 1 s: itself the soonest
        self.assertEqual(box.box.owed(ip_address("192.0.2.3")), 0.0)
        box.offend(ip_address("192.0.2.4"), Offence.GRACE_EXCEEDED)  # 10 s: the 5 s one goes
        self.assertEqual(box.box.tracked(4), 2)
        self.assertEqual(box.box.owed(ip_address("192.0.2.1")), 0.0)
        self.assertEqual(box.box.owed(ip_address("192.0.2.4")), 10.0)
        self.assertIsNone(box.box.refusal(ip_address("198.51.100.1")))
        [full] = box.codes("SSH_PENALTY_TABLE_FULL")
        self.assertEqual(full["cs_level"], Level.WARNING)

    def test_deny_all_refuses_everyone_but_the_exempt(self) -> None:
        """``deny-all``: while the table is full, only exempt addresses get in."""
        box = Box(max_sources=2, overflow="deny-all", exempt=("198.51.100.0/24",))
        self.fill(box)
        self.assertIs(box.box.refusal(ip_address("203.0.113.1")), PenaltyRefusal.TABLE_FULL)
        self.assertIsNone(box.box.refusal(ip_address("198.51.100.1")))
        self.assertIsNone(box.box.refusal(ip_address("2001:db8::1")))  # IPv6 has its own table
        box.offend(ip_address("192.0.2.3"), Offence.GRACE_EXCEEDED)
        self.assertEqual(box.box.owed(ip_address("192.0.2.3")), 0.0)
        box.clock.advance(5.1)
        self.assertIsNone(box.box.refusal(ip_address("203.0.113.1")))

    def test_full_reported_once_per_episode(self) -> None:
        """The full table is logged when it fills, and again only after it drained."""
        box = Box(max_sources=2, overflow="deny-all")
        self.fill(box)
        box.offend(ip_address("192.0.2.3"), Offence.AUTH_FAIL, times=3)
        self.assertEqual(len(box.codes("SSH_PENALTY_TABLE_FULL")), 1)
        box.clock.advance(11)
        self.fill(box)
        box.offend(ip_address("192.0.2.3"), Offence.AUTH_FAIL)
        self.assertEqual(len(box.codes("SSH_PENALTY_TABLE_FULL")), 2)

    def test_memory_stays_bounded(self) -> None:
        """Extending one penalty many times does not grow the table's index without bound."""
        box = Box()
        box.offend(ATTACKER, times=100000)
        table = box.box._tables[4]
        self.assertEqual(len(table), 1)
        self.assertLessEqual(len(table._by_expiry), 2 * len(table) + 65)


class AttemptTests(SynchronousTestCase):
    """What the server counts as an authentication attempt."""

    def test_credentials(self) -> None:
        """A password or a signed key is an attempt; asking whether a key would do is not."""
        key = OTHER_KEY.public().blob()
        query = SSHPrivateKey(b"user", b"ssh-ed25519", key, None, None)
        signed = SSHPrivateKey(b"user", b"ssh-ed25519", key, b"data", b"signature")
        self.assertFalse(carries_credential(query))
        self.assertTrue(carries_credential(signed))
        self.assertTrue(carries_credential(UsernamePassword(b"user", b"secret")))


class PenaltySettingTests(SynchronousTestCase):
    """Loading ``ssh.perSourcePenalties``."""

    def test_defaults(self) -> None:
        """OpenSSH's numbers: 5 s, 1 s, 10 s, min 15 s, max 10 min, 65536 networks, permissive."""
        config = parse_config({}).ssh.per_source_penalties
        self.assertEqual(
            (config.enable, config.auth_fail, config.no_auth, config.grace_exceeded),
            (True, 5.0, 1.0, 10.0),
        )
        self.assertEqual((config.min, config.max, config.max_sources), (15.0, 600.0, 65536))
        self.assertEqual((config.exempt, config.overflow), ((), "permissive"))

    def test_errors_name_the_key(self) -> None:
        """Bad values are refused at load with the key's path."""
        cases = [
            ({"exempt": ["10.0.0.1/8"]}, "ssh.perSourcePenalties.exempt[0]", "CIDR"),
            ({"exempt": ["example.com"]}, "ssh.perSourcePenalties.exempt[0]", "CIDR"),
            ({"min": "10m"}, "ssh.perSourcePenalties.min", "less than max"),
            ({"overflow": "drop"}, "ssh.perSourcePenalties.overflow", "deny-all"),
            ({"maxSources": -1}, "ssh.perSourcePenalties.maxSources", "at least 1"),
            ({"authFail": "-5s"}, "ssh.perSourcePenalties.authFail", "negative"),
            ({"penalty": "5s"}, "ssh.perSourcePenalties.penalty", "unknown key"),
        ]
        for section, path, fragment in cases:
            with self.assertRaises(ConfigError, msg=str(section)) as caught:
                parse_config({"ssh": {"perSourcePenalties": section}})
            self.assertIn(path, str(caught.exception))
            self.assertIn(fragment, str(caught.exception))


def penalties_config(**values: Any) -> Any:
    return make_config(per_source_penalties=attrs.evolve(PerSourcePenaltiesConfig(), **values))


class ServerPenaltyTests(SynchronousTestCase):
    """Which connections the SSH server penalises, and refusing penalised sources."""

    def setUp(self) -> None:
        self.passwords = Passwords()
        self.harness = Harness(
            config=penalties_config(), authenticators=Authenticators(password=self.passwords)
        )

    def owed(self, host: str = "203.0.113.7") -> float:
        penalties = self.harness.factory.admission.penalties
        assert penalties is not None
        return penalties.owed(ip_address(host))

    def connect(self, **kwargs: Any) -> Any:
        client = connect_from(self.harness, "203.0.113.7", **kwargs)
        assert client is not None
        self.harness.flush()
        return client

    def test_failed_password_then_leave(self) -> None:
        """A failed attempt, then the client leaves: ``authFail``, noted on the failed handshake."""
        self.connect(passwords=["wrong"])
        self.harness.advance(1)  # the failure is answered after a second; the client gives up
        self.assertEqual(self.owed(), 5.0)
        [event] = self.harness.events_with("SSH_HANDSHAKE_FAILED")
        self.assertEqual(event["offence"], Offence.AUTH_FAIL.value)

    def test_leave_before_the_answer(self) -> None:
        """Leaving while the password is being checked counts as a failed attempt."""
        client = self.connect(passwords=["wrong"])
        leave(self.harness, client)
        self.assertEqual(self.owed(), 5.0)

    def test_wrong_key_then_leave(self) -> None:
        """A signed public key that is refused is an attempt too."""
        harness = Harness(config=penalties_config())
        client = connect_from(harness, "203.0.113.7", keys_=[OTHER_KEY])
        harness.flush()
        assert client is not None
        self.assertTrue(client.lost.called)
        self.assertEqual(harness.factory.admission.penalties.owed(ATTACKER), 5.0)  # type: ignore[union-attr]

    def test_too_many_failures(self) -> None:
        """Disconnected at ``maxAuthTries``: ``authFail``, added when the connection closed."""
        client = self.connect(passwords=["wrong"] * 6)
        while not client.lost.called:
            self.harness.advance(0.5)
        self.assertIn("SSH_AUTH_TOO_MANY_ATTEMPTS", self.harness.codes())
        self.assertEqual(self.owed(), 5.0)

    def test_leave_without_trying(self) -> None:
        """A client that leaves without an attempt (only ``none``): ``noAuth``."""
        client = self.connect(manual=True)
        leave(self.harness, client)
        self.assertEqual(self.owed(), 1.0)

    def test_grace_exceeded(self) -> None:
        """Cut off at the login grace time: ``graceExceeded``."""
        self.connect(manual=True)
        self.harness.advance(120)
        self.assertIn("SSH_HANDSHAKE_TIMEOUT", self.harness.codes())
        self.assertEqual(self.owed(), 10.0)

    def test_login_is_not_penalised(self) -> None:
        """A connection that logged in owes nothing, however it ends."""
        client = self.connect(passwords=["wrong", "secret"])
        self.harness.advance(1)
        self.assertTrue(client.authenticated.called)
        leave(self.harness, client)
        self.assertEqual(self.owed(), 0.0)

    def test_authenticator_outage_is_not_penalised(self) -> None:
        """Failures because the authenticator could not decide are not the client's fault."""
        self.passwords.unavailable = True
        client = self.connect(passwords=["secret"])
        self.harness.advance(1)
        self.assertTrue(client.banners)
        self.assertTrue(client.lost.called)
        self.assertEqual(self.owed(), 0.0)

    def test_shutdown_is_not_penalised(self) -> None:
        """Connections the gateway closes while shutting down owe nothing."""
        self.connect(manual=True)
        self.harness.factory.close_all("the server is shutting down")
        self.harness.flush()
        self.assertEqual(self.owed(), 0.0)

    def test_penalised_source_refused_at_accept(self) -> None:
        """Once penalised, the source's next connection is closed at once; others get in."""
        for _ in range(4):
            leave(self.harness, self.connect(passwords=["wrong"]))
        self.assertIsNone(connect_from(self.harness, "203.0.113.7", passwords=["secret"]))
        [refusal] = self.harness.events_with("SSH_PENALTY_REFUSED")
        self.assertEqual(refusal["reason"], PenaltyRefusal.PENALISED.value)
        self.assertEqual(refusal["cs_level"], Level.DEBUG)
        other = connect_from(self.harness, "198.51.100.20", passwords=["secret"])
        self.harness.flush()
        assert other is not None
        self.assertTrue(other.authenticated.called)

    def test_disabled(self) -> None:
        """``enable: false``: no penalties are kept and nobody is refused for them."""
        harness = Harness(config=penalties_config(enable=False))
        self.assertIsNone(harness.factory.admission.penalties)
        for _ in range(10):
            client = connect_from(harness, "203.0.113.7", passwords=["wrong"])
            assert client is not None
            harness.advance(1.5)
            leave(harness, client)
        self.assertIsNotNone(connect_from(harness, "203.0.113.7", manual=True))
