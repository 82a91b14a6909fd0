"""``./bench/run --only metrics``: how long a scrape takes with 200 sessions open.

The target: a scrape answers in well under 50 ms with 200 sessions running,
since the registry is encoded in the reactor thread, which also moves every
session's bytes. Measured side by side with a scrape of the same gateway
before any session opened.

The gateway runs in this process, assembled from its real parts (the SSH
factory, the session registry, the metrics, their HTTP resource and site) with
the fake backend of ``conch_container.testing`` instead of Docker: 200
containers would measure the engine on a two-core machine, not the scrape,
and the metrics hold nothing per container. Each session runs ``sleep``
in the fake shell, so it is an active session while the scrapes run. The
clients are ``bench/conchclient.py``'s, in the same reactor; scrapes are
plain HTTP GETs from a thread, timed from the request to the last byte.

Also printed: what encoding the registry alone takes, and what one recorded
event costs with metrics on and off (the null recorders).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import urllib.request
from collections.abc import Sequence
from typing import Any

from bench.procs import LOOPBACK

#: Sessions open during the loaded scrapes.
SESSIONS = 200
#: Scrapes per measurement.
SCRAPES = 50
#: The answer time the scrape must stay well under, in milliseconds.
TARGET_MS = 50.0
#: Logins under way at once (below ssh.perSourceMaxStartups, 32 by default).
LOGIN_BATCH = 16


def requested(argv: Sequence[str]) -> bool:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--only")
    known, _ = pre.parse_known_args(list(argv))
    return bool(known.only == "metrics")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run --only metrics")
    parser.add_argument("--only", choices=["metrics"], required=True)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--scrapes", type=int, default=SCRAPES)
    parser.add_argument("--python", help="ignored: the gateway runs in this process")
    return parser.parse_args(list(argv))


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def thd_scrape(url: str) -> float:
    """Milliseconds from sending the request to the last byte of the answer (in a thread)."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as answer:
        answer.read()
    return (time.perf_counter() - started) * 1000


async def scrape_times(url: str, count: int) -> list[float]:
    from twisted.internet.threads import deferToThread

    from bench.conchclient import sleep

    times = []
    for _ in range(count):
        times.append(await deferToThread(thd_scrape, url))
        # A pause between scrapes, as a scrape interval has.
        await sleep(0.01)
    return times


def encode_times(registry: Any, count: int) -> list[float]:
    from prometheus_client.exposition import generate_latest

    times = []
    for _ in range(count):
        started = time.perf_counter()
        generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    return times


def event_cost_ns() -> tuple[float, float]:
    """Nanoseconds per recorded connection (open, handshake, session, close): metrics on, off."""
    from conch_container.metrics import NULL_METRICS, GatewayMetrics

    def one(metrics: Any) -> None:
        country = metrics.connected("192.0.2.1:50000")
        metrics.handshake_succeeded(country)
        metrics.session_started()
        metrics.session_ended()
        metrics.disconnected(country)

    real = GatewayMetrics()
    n = 20000
    on = min(timeit.repeat(lambda: one(real), number=n, repeat=3)) / n * 1e9
    off = min(timeit.repeat(lambda: one(NULL_METRICS), number=n, repeat=3)) / n * 1e9
    return on, off


class _Gateway:
    """The gateway's SSH server and metrics endpoint, on loopback ports of this process."""

    def __init__(self, reactor: Any, public_key: str) -> None:
        import attrs
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from zope.interface import implementer

        from conch_container.config import AppConfig, SSHConfig
        from conch_container.httpserver import BoundedSite
        from conch_container.interfaces import IPublicKeyAuthenticator
        from conch_container.log import CodeLogger
        from conch_container.metadata import AuthResult
        from conch_container.metrics import GatewayMetrics, MetricsResource
        from conch_container.service import SessionRegistry
        from conch_container.ssh.factory import ContainerSSHFactory
        from conch_container.testing.backend import FakeBackend

        @implementer(IPublicKeyAuthenticator)
        class OneKey:
            name = "bench"

            async def authenticate_public_key(self, metadata: Any, key: str) -> AuthResult:
                return AuthResult(success=key == public_key)

        @attrs.define
        class Authenticators:
            password: Any = None
            public_key: Any = attrs.Factory(OneKey)
            authz: Any = None

        host_key = (
            ed25519.Ed25519PrivateKey.generate()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            .decode()
        )
        config = AppConfig(ssh=attrs.evolve(SSHConfig(), hostkeys=(host_key,)))
        log = CodeLogger("bench.metrics", observer=lambda event: None)
        self.metrics = GatewayMetrics()
        self.backend = FakeBackend(reactor)
        registry = SessionRegistry(reactor, log)
        factory = ContainerSSHFactory(
            config,
            Authenticators(),
            self.backend,
            registry,
            reactor,
            log,
            "bench",
            metrics=self.metrics,
        )
        self.ssh = reactor.listenTCP(0, factory, interface=LOOPBACK)
        resource = MetricsResource(self.metrics.registry, "/metrics", log)
        # The site the gateway's metrics endpoint runs on, limits included.
        site = BoundedSite(resource, name="metrics", log=log, clock=reactor)
        self.http = reactor.listenTCP(0, site, interface=LOOPBACK)
        self.url = f"http://{LOOPBACK}:{self.http.getHost().port}/metrics"

    def value(self, name: str, **labels: str) -> float:
        found = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found


async def run(reactor: Any, settings: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from twisted.conch.ssh import keys
    from twisted.internet.defer import gatherResults

    from bench.conchclient import Link

    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    public = " ".join(key.public().toString("openssh").decode().split()[:2])
    gateway = _Gateway(reactor, public)
    progress(f"==> metrics: {settings.scrapes} scrapes of an idle gateway")
    idle = await scrape_times(gateway.url, settings.scrapes)
    idle_encode = encode_times(gateway.metrics.registry, settings.scrapes)

    progress(f"==> opening {settings.sessions} sessions (fake backend, sleep 3600)")
    links: list[Link] = []

    async def login() -> None:
        link = Link(gateway.ssh.getHost().port, "bench", key)
        links.append(link)
        await link.connect(60.0)
        await link.open_session("sleep 3600", pty=False)

    for start in range(0, settings.sessions, LOGIN_BATCH):
        batch = min(LOGIN_BATCH, settings.sessions - start)
        await gatherResults([as_deferred(login()) for _ in range(batch)], consumeErrors=True)
    active = gateway.value("conch_container_ssh_active_sessions")
    current = gateway.value("containerssh_ssh_current_connections", country="XX")
    progress(f"    {active:.0f} active sessions on {current:.0f} connections")

    progress(f"==> metrics: {settings.scrapes} scrapes with the sessions open")
    loaded = await scrape_times(gateway.url, settings.scrapes)
    loaded_encode = encode_times(gateway.metrics.registry, settings.scrapes)
    on_ns, off_ns = event_cost_ns()

    for link in links:
        link.abort()
    await gateway.ssh.stopListening()
    await gateway.http.stopListening()

    print(report(settings, idle, loaded, idle_encode, loaded_encode, active, on_ns, off_ns))
    ok = active == settings.sessions and p99(loaded) < TARGET_MS
    return 0 if ok else 1


def as_deferred(coroutine: Any) -> Any:
    """A coroutine as the Deferred Twisted's APIs take."""
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(coroutine)


def report(
    settings: argparse.Namespace,
    idle: list[float],
    loaded: list[float],
    idle_encode: list[float],
    loaded_encode: list[float],
    active: float,
    on_ns: float,
    off_ns: float,
) -> str:
    def row(name: str, values: list[float]) -> str:
        return f"{name:<34} {statistics.median(values):>9.2f} {p99(values):>9.2f}"

    verdict = "meets" if p99(loaded) < TARGET_MS else "MISSES"
    lines = [
        "",
        f"Scrape time in ms ({settings.scrapes} scrapes each; target: under {TARGET_MS:g} ms)",
        f"{'':<34} {'median':>9} {'p99':>9}",
        row("HTTP scrape, idle gateway", idle),
        row(f"HTTP scrape, {active:.0f} sessions running", loaded),
        row("encoding alone, idle", idle_encode),
        row(f"encoding alone, {active:.0f} sessions", loaded_encode),
        "",
        f"With {active:.0f} sessions the p99 scrape {verdict} the {TARGET_MS:g} ms target.",
        f"One connection's events (open, handshake, session start and end, close) cost "
        f"{on_ns:.0f} ns with metrics on, {off_ns:.0f} ns with them off.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    settings = parse_args(argv)
    from twisted.internet import task

    status: list[int] = []

    async def go(reactor: Any) -> None:
        status.append(await run(reactor, settings))

    try:
        task.react(lambda reactor: as_deferred(go(reactor)))
    except SystemExit as e:
        if e.code not in (0, None):
            return int(e.code) if isinstance(e.code, int) else 1
    return status[0] if status else 1
