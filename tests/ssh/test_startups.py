"""``ssh.maxStartups`` and ``ssh.perSourceMaxStartups``: places for connections authenticating."""

from __future__ import annotations

import random
from ipaddress import ip_address

from twisted.trial.unittest import SynchronousTestCase

from conch_container.codes import Level
from conch_container.config import parse_config
from conch_container.config.errors import ConfigError
from conch_container.config.preauth import parse_max_startups
from conch_container.listener import LISTEN_BACKLOG, endpoint_description
from conch_container.ssh.sources import SourceNetworks
from conch_container.ssh.startups import MaxStartups, StartupLimiter, StartupRefusal
from tests.ssh.harness import Harness, make_config
from tests.ssh.preauth_support import connect_from, draw_from, leave

NETWORKS = SourceNetworks(32, 64)
A = NETWORKS.of(ip_address("203.0.113.5"))
B = NETWORKS.of(ip_address("198.51.100.9"))


def no_draw() -> float:
    raise AssertionError("the lottery must not be drawn here")


class MaxStartupsTests(SynchronousTestCase):
    """The ``start:rate:full`` setting and its drop probability."""

    def test_forms(self) -> None:
        """``start:rate:full`` as written; a single ``N`` means ``N:100:N``, as in OpenSSH."""
        self.assertEqual(parse_max_startups("10:30:100"), (10, 30, 100))
        self.assertEqual(parse_max_startups("25"), (25, 100, 25))
        self.assertEqual(parse_max_startups("0:50:10"), (0, 50, 10))

    def test_bad_values_name_the_key(self) -> None:
        """Malformed or inconsistent values are refused at load, naming ``ssh.maxStartups``."""
        cases = {
            "10:30": "start:rate:full",
            "a:b:c": "start:rate:full",
            "-1:30:100": "start:rate:full",
            "10:30:100:5": "start:rate:full",
            "100:30:10": "start must not be greater than full",
            "10:0:100": "rate must be a percentage",
            "10:101:100": "rate must be a percentage",
            "0": "full must be at least 1",
            "\uff11\uff10": "start:rate:full",  # full-width digits are not ASCII numbers
        }
        for text, fragment in cases.items():
            with self.assertRaises(ConfigError, msg=text) as caught:
                parse_config({"ssh": {"maxStartups": text}})
            self.assertIn("ssh.maxStartups", str(caught.exception))
            self.assertIn(fragment, str(caught.exception))

    def test_yaml_number(self) -> None:
        """``maxStartups: 50`` written as a YAML number is the single-number form."""
        config = parse_config({"ssh": {"maxStartups": 50}})
        self.assertEqual(MaxStartups.parse(config.ssh.max_startups), MaxStartups(50, 100, 50))

    def test_drop_probability(self) -> None:
        """0 below start, rate% at start, rising linearly to 1 at full and beyond."""
        limits = MaxStartups(10, 30, 100)
        self.assertEqual(limits.drop_probability(0), 0.0)
        self.assertEqual(limits.drop_probability(9), 0.0)
        self.assertAlmostEqual(limits.drop_probability(10), 0.30)
        self.assertAlmostEqual(limits.drop_probability(55), 0.65)
        self.assertAlmostEqual(limits.drop_probability(99), 0.3 + 0.7 * 89 / 90)
        self.assertEqual(limits.drop_probability(100), 1.0)
        self.assertEqual(limits.drop_probability(1000), 1.0)

    def test_single_number_is_a_hard_limit(self) -> None:
        """``N:100:N``: no drop below N, every connection refused from N on."""
        limits = MaxStartups.parse("5")
        self.assertEqual(limits.drop_probability(4), 0.0)
        self.assertEqual(limits.drop_probability(5), 1.0)


class StartupLimiterTests(SynchronousTestCase):
    """Counting connections authenticating, and the lottery."""

    def test_no_draw_below_start(self) -> None:
        """Below ``start`` every connection is admitted without drawing."""
        limiter = StartupLimiter(MaxStartups(3, 30, 10), 100, no_draw)
        for _ in range(3):
            self.assertIsNone(limiter.refusal(A))
            limiter.start(A)
        self.assertEqual(limiter.pending, 3)

    def test_draw_decides_between_start_and_full(self) -> None:
        """A draw below the probability refuses; at or above it admits; full refuses outright."""
        draws = [0.49, 0.5, 0.74, 0.75]
        limiter = StartupLimiter(MaxStartups(2, 50, 4), 100, lambda: draws.pop(0))
        limiter.start(A)
        limiter.start(A)
        # 2 pending: probability 0.5.
        self.assertIs(limiter.refusal(A), StartupRefusal.EARLY_DROP)
        self.assertIsNone(limiter.refusal(A))
        limiter.start(A)
        # 3 pending: probability 0.75.
        self.assertIs(limiter.refusal(A), StartupRefusal.EARLY_DROP)
        self.assertIsNone(limiter.refusal(A))
        limiter.start(A)
        # 4 pending: full, no draw left to make.
        self.assertIs(limiter.refusal(A), StartupRefusal.FULL)
        self.assertEqual(draws, [])

    def test_refusal_rate_with_seeded_random(self) -> None:
        """With ``start`` connections pending, about ``rate``% of new ones are refused."""
        seeded = random.Random(20240701)
        limiter = StartupLimiter(MaxStartups(10, 30, 100), 1000, seeded.random)
        for _ in range(10):
            limiter.start(A)
        refused = sum(limiter.refusal(B) is not None for _ in range(10000))
        self.assertTrue(2800 < refused < 3200, refused)

    def test_per_source_share(self) -> None:
        """One network holds at most its share; others are not affected; a finish frees one."""
        limiter = StartupLimiter(MaxStartups(100, 30, 1000), 2, no_draw)
        first = limiter.start(A)
        limiter.start(A)
        self.assertIs(limiter.refusal(A), StartupRefusal.PER_SOURCE)
        self.assertIsNone(limiter.refusal(B))
        first.finish()
        self.assertIsNone(limiter.refusal(A))

    def test_per_source_before_lottery(self) -> None:
        """A network over its share is refused for that, without a draw."""
        limiter = StartupLimiter(MaxStartups(1, 30, 10), 1, no_draw)
        limiter.start(A)
        self.assertIs(limiter.refusal(A), StartupRefusal.PER_SOURCE)

    def test_finish_is_counted_once(self) -> None:
        """Finishing twice (login, then close) gives back one place."""
        limiter = StartupLimiter(MaxStartups(10, 30, 100), 5, no_draw)
        startup = limiter.start(A)
        limiter.start(A)
        startup.finish()
        startup.finish()
        self.assertEqual(limiter.pending, 1)
        self.assertEqual(limiter.pending_from(A), 1)

    def test_forgets_networks_without_connections(self) -> None:
        """The per-network table holds only networks with connections in progress."""
        limiter = StartupLimiter(MaxStartups(10, 30, 100), 5, no_draw)
        startups = [limiter.start(NETWORKS.of(ip_address(f"192.0.2.{n}"))) for n in range(50)]
        for startup in startups:
            startup.finish()
        self.assertEqual(limiter.pending, 0)
        self.assertEqual(limiter._by_source, {})

    def test_unknown_source(self) -> None:
        """A peer without an IP address counts toward the total only."""
        limiter = StartupLimiter(MaxStartups(10, 30, 100), 1, no_draw)
        limiter.start(None)
        limiter.start(None)
        self.assertEqual(limiter.pending, 2)
        self.assertIsNone(limiter.refusal(None))


class ServerAdmissionTests(SynchronousTestCase):
    """The limits as the SSH server applies them at accept."""

    def harness(self, max_startups: str = "1", per_source: int = 20) -> Harness:
        return Harness(
            config=make_config(max_startups=max_startups, per_source_max_startups=per_source)
        )

    def test_counted_from_accept(self) -> None:
        """A connection counts from TCP accept, before any byte of the handshake."""
        harness = self.harness(max_startups="10")
        connect_from(harness, "203.0.113.5", manual=True)
        self.assertEqual(harness.factory.admission.startups.pending, 1)

    def test_refused_connection_gets_nothing(self) -> None:
        """Over the limit the port is told to close the socket: no transport, no greeting."""
        harness = self.harness(max_startups="1")
        self.assertIsNotNone(connect_from(harness, "203.0.113.5", manual=True))
        self.assertIsNone(connect_from(harness, "198.51.100.9", manual=True))
        self.assertEqual(len(harness.events_with("SSH_CONNECTED")), 1)
        [refusal] = harness.events_with("SSH_STARTUP_REFUSED")
        self.assertEqual(refusal["remoteAddr"], "198.51.100.9:50001")
        self.assertEqual(refusal["cs_level"], Level.DEBUG)
        self.assertEqual(refusal["reason"], StartupRefusal.FULL.value)

    def test_login_gives_the_place_back(self) -> None:
        """A connection that logs in no longer counts: the next one is admitted."""
        harness = self.harness(max_startups="1")
        client = connect_from(harness, "203.0.113.5", passwords=["secret"])
        harness.flush()
        assert client is not None
        self.assertTrue(client.authenticated.called)
        self.assertEqual(harness.factory.admission.startups.pending, 0)
        self.assertIsNotNone(connect_from(harness, "198.51.100.9", manual=True))

    def test_close_gives_the_place_back(self) -> None:
        """A connection that closes before logging in no longer counts."""
        harness = self.harness(max_startups="1")
        client = connect_from(harness, "203.0.113.5", manual=True)
        harness.flush()
        assert client is not None
        leave(harness, client)
        self.assertEqual(harness.factory.admission.startups.pending, 0)
        self.assertIsNotNone(connect_from(harness, "198.51.100.9", manual=True))

    def test_per_source_share(self) -> None:
        """One address holds its share; another address is still admitted."""
        harness = self.harness(max_startups="100:30:1000", per_source=2)
        for _ in range(2):
            self.assertIsNotNone(connect_from(harness, "203.0.113.5", manual=True))
        self.assertIsNone(connect_from(harness, "203.0.113.5", manual=True))
        self.assertIsNotNone(connect_from(harness, "198.51.100.9", manual=True))
        [refusal] = harness.events_with("SSH_STARTUP_REFUSED")
        self.assertEqual(refusal["reason"], StartupRefusal.PER_SOURCE.value)

    def test_ipv6_share_is_per_64(self) -> None:
        """IPv6 addresses of one /64 share one share (the default block size)."""
        harness = self.harness(max_startups="100:30:1000", per_source=2)
        self.assertIsNotNone(connect_from(harness, "2001:db8:0:1::1", manual=True))
        self.assertIsNotNone(connect_from(harness, "2001:db8:0:1::2", manual=True))
        self.assertIsNone(connect_from(harness, "2001:db8:0:1:ffff::3", manual=True))
        self.assertIsNotNone(connect_from(harness, "2001:db8:0:2::1", manual=True))

    def test_early_drop_in_the_server(self) -> None:
        """Between start and full the injected lottery decides."""
        harness = self.harness(max_startups="1:50:3", per_source=10)
        draws = [0.4, 0.6]
        draw_from(harness, lambda: draws.pop(0))
        self.assertIsNotNone(connect_from(harness, "203.0.113.5", manual=True))
        self.assertIsNone(connect_from(harness, "198.51.100.9", manual=True))
        self.assertIsNotNone(connect_from(harness, "198.51.100.9", manual=True))
        [refusal] = harness.events_with("SSH_STARTUP_REFUSED")
        self.assertEqual(refusal["reason"], StartupRefusal.EARLY_DROP.value)


class RefusalSummaryTests(SynchronousTestCase):
    """Refusals at warning level: the first at once, then a summary a minute."""

    def setUp(self) -> None:
        self.harness = Harness(config=make_config(max_startups="1"))
        connect_from(self.harness, "203.0.113.5", manual=True)

    def refuse(self, count: int) -> None:
        for _ in range(count):
            self.assertIsNone(connect_from(self.harness, "198.51.100.9", manual=True))

    def warnings(self) -> list[dict[str, object]]:
        return self.harness.events_with("SSH_CONNECTIONS_REFUSED")

    def summaries_scheduled(self) -> int:
        calls = self.harness.reactor.getDelayedCalls()
        return sum(
            c.active() and getattr(getattr(c, "func", None), "__name__", "") == "_summarise"
            for c in calls
        )

    def test_first_refusal_at_once(self) -> None:
        """The first refusal is reported at warning level at once, with its reason."""
        self.refuse(1)
        [warning] = self.warnings()
        self.assertEqual(warning["cs_level"], Level.WARNING)
        self.assertEqual(warning["reason"], StartupRefusal.FULL.value)

    def test_then_summed_up(self) -> None:
        """Further refusals are counted and reported once, when the minute is over."""
        self.refuse(6)
        self.assertEqual(len(self.warnings()), 1)
        self.harness.reactor.advance(59)
        self.assertEqual(len(self.warnings()), 1)
        self.harness.reactor.advance(1)
        summary = self.warnings()[1]
        self.assertEqual(summary["refused"], 5)
        self.assertEqual(summary["counts"], {"FULL": 5})
        self.assertEqual(len(self.harness.events_with("SSH_STARTUP_REFUSED")), 6)

    def test_quiet_again(self) -> None:
        """A minute without refusals ends the summaries; the next refusal is reported at once."""
        self.refuse(1)
        self.harness.reactor.advance(60)
        self.assertEqual(len(self.warnings()), 1)
        self.assertEqual(self.summaries_scheduled(), 0)
        self.refuse(1)
        self.assertEqual(len(self.warnings()), 2)

    def test_stop_cancels_the_summary(self) -> None:
        """When the listener stops, no summary is left scheduled."""
        self.refuse(2)
        self.assertEqual(self.summaries_scheduled(), 1)
        self.harness.factory.doStop()
        self.assertEqual(self.summaries_scheduled(), 0)


class ListenBacklogTests(SynchronousTestCase):
    """The kernel queue in front of the accept loop."""

    def test_backlog_in_every_listen_address(self) -> None:
        """IPv4 and IPv6 listeners ask for a deep accept queue (Twisted's default is 50).

        A flood then waits in the queue and is refused at accept, instead of
        overflowing it and having the kernel drop legitimate clients' SYNs.
        """
        for listen in ("0.0.0.0:2222", ":2222", "[::]:2222", "[::1]:22"):
            description = endpoint_description(listen)
            self.assertTrue(description.endswith(f":backlog={LISTEN_BACKLOG}"), description)
        self.assertGreaterEqual(LISTEN_BACKLOG, 1024)
