"""``python -m conch_container.testing.kubeapi``: the test Kubernetes API server as a process.

It listens, logs ``KUBEAPI_LISTENING`` with its URL, and answers until
SIGINT or SIGTERM, when it stops listening, removes every Docker container
it made and exits with status 0. Exit status 2 means unusable options, 1 that
the engine could not be reached or the address could not be bound.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from conch_container.codes import Level
from conch_container.config import LogConfig
from conch_container.log.setup import LogSetupError, install, start_logging
from conch_container.testing.kubeapi.server import KubeAPIServer

DESCRIPTION = "run a Kubernetes API server for tests whose pods are local Docker containers"


def _listen(value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None, reactor: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conch_container.testing.kubeapi", description=DESCRIPTION
    )
    parser.add_argument(
        "--listen", type=_listen, default="127.0.0.1:6443", help="HOST:PORT (default %(default)s)"
    )
    parser.add_argument("--token", required=True, help="the bearer token clients must send")
    parser.add_argument("--tls-dir", help="serve HTTPS; write ca.crt, server.crt, server.key here")
    parser.add_argument(
        "--docker-host", help="the Docker engine (default: DOCKER_HOST or the local socket)"
    )
    parser.add_argument(
        "--log-level", default="info", help="least severe level logged (default %(default)s)"
    )
    args = parser.parse_args(argv)
    if reactor is None:
        from twisted.internet import reactor
    try:
        output = start_logging(LogConfig(level=Level.parse(args.log_level), format="text"))
    except (LogSetupError, ValueError) as e:
        print(f"kubeapi: {e}", file=sys.stderr)
        return 2
    install(output.observer)
    interface, port = args.listen
    server = KubeAPIServer(
        reactor,
        args.token,
        interface=interface,
        port=port,
        docker_host=args.docker_host,
        tls_dir=args.tls_dir,
    )
    status = [0]

    def not_started(failure: Failure) -> None:
        print(f"kubeapi: {failure.getErrorMessage()}", file=sys.stderr)
        status[0] = 1
        reactor.stop()

    def start() -> None:
        d = Deferred.fromCoroutine(server.start())
        d.addCallback(lambda url: print(url, flush=True))
        d.addErrback(not_started)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromCoroutine(server.stop())
    )
    reactor.run()
    output.close()
    return status[0]
