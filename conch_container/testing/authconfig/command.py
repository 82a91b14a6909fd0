"""``conch-container test-webhook-server``: the test webhook server as a process.

It loads the users file once (restart it to change users), listens, logs
``CONFIG_SERVER_AVAILABLE`` with the address it is bound to, and answers
until SIGINT or SIGTERM, when it stops listening and exits with status 0.
Exit status 2 means the users file or the options are unusable, 1 that the
address could not be bound.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.auth.users_file import StaticUsersError
from conch_container.codes import Level
from conch_container.config import LogConfig
from conch_container.errors import ContainerSSHError
from conch_container.httpserver import HTTPServerService, TLSConfigError
from conch_container.log import CodeLogger
from conch_container.log.setup import LogOutput, LogSetupError, install, start_logging
from conch_container.testing.authconfig.resource import AuthConfigResource
from conch_container.testing.authconfig.serve import server_config, webhook_server_service
from conch_container.testing.authconfig.users import load_server_users

__all__ = ["add_arguments", "main", "run"]

DESCRIPTION = "run a test authentication, authorization and configuration webhook server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options, for ``conch-container`` and for ``python -m``."""
    parser.add_argument("--users", required=True, help="the users file (YAML)")
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", help="host:port to listen on (default %(default)s)"
    )
    parser.add_argument("--cert", help="PEM certificate (chain) file: serve HTTPS")
    parser.add_argument("--key", help="PEM private key file of --cert")
    parser.add_argument(
        "--client-ca",
        help="PEM file of the CAs that sign client certificates: require one (mutual TLS)",
    )
    parser.add_argument(
        "--log-level", default="info", help="least severe level logged (default %(default)s)"
    )
    parser.add_argument(
        "--log-format", default="text", choices=("text", "ljson"), help="log line format"
    )


def run(args: argparse.Namespace, reactor: Any = None) -> int:
    """Serve until the reactor stops; the process's exit status."""
    if reactor is None:
        from twisted.internet import reactor
    log = CodeLogger("conch_container.testing.authconfig")
    try:
        level = Level.parse(args.log_level)
        users = load_server_users(args.users)
        config = server_config(args.listen, cert=args.cert, key=args.key, client_ca=args.client_ca)
        resource = AuthConfigResource(users, reactor=reactor, log=log)
        service = webhook_server_service(resource, config, reactor=reactor, log=log)
    except (StaticUsersError, TLSConfigError, ValueError) as error:
        print(f"test-webhook-server: {error}", file=sys.stderr)
        return 2
    try:
        output = start_logging(LogConfig(level=level, format=args.log_format))
    except LogSetupError:
        return 2  # already reported on standard error
    install(output.observer)
    return _Server(reactor, resource, service, log, output).run()


class _Server:
    """One run of the command: listen, answer, stop on a signal."""

    def __init__(
        self,
        reactor: Any,
        resource: AuthConfigResource,
        service: HTTPServerService,
        log: CodeLogger,
        output: LogOutput,
    ) -> None:
        self._reactor = reactor
        self._resource = resource
        self._service = service
        self._log = log
        self._output = output
        self.status = 0

    def run(self) -> int:
        self._reactor.callWhenRunning(self._start)
        self._reactor.addSystemEventTrigger("before", "shutdown", self._stop)
        self._reactor.run()
        self._output.close()
        return self.status

    def _start(self) -> None:
        self._resource.start()
        self._service.startService().addErrback(self._not_listening)

    def _not_listening(self, failure: Failure) -> None:
        # HTTP_LISTEN_FAILED is logged already; standard error says it whatever the log level.
        error = failure.value
        reason = error.explanation if isinstance(error, ContainerSSHError) else str(error)
        print(f"test-webhook-server: {reason}", file=sys.stderr)
        self.status = 1
        self._reactor.stop()

    def _stop(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop_serving())

    async def _stop_serving(self) -> None:
        served = self._service.port is not None
        # The socket and connections first: requests in flight still get their bcrypt check.
        await self._service.stopService()
        await self._resource.stop()
        if served:
            self._log.event(messages.TEST_WEBHOOK_STOPPED, "The test webhook server stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m conch_container.testing.authconfig``."""
    parser = argparse.ArgumentParser(
        prog="python -m conch_container.testing.authconfig", description=DESCRIPTION
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
