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

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.ssl import CertificateOptions
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.auth.users_file import StaticUsersError
from conch_container.codes import Level
from conch_container.config import LogConfig
from conch_container.log import CodeLogger
from conch_container.log.setup import LogOutput, LogSetupError, install, start_logging
from conch_container.testing.authconfig.resource import AuthConfigResource
from conch_container.testing.authconfig.serve import listen_address, load_tls, serve
from conch_container.testing.authconfig.users import ServerUser, load_server_users

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
        "--log-level", default="info", help="least severe level logged (default %(default)s)"
    )
    parser.add_argument(
        "--log-format", default="text", choices=("text", "ljson"), help="log line format"
    )


def run(args: argparse.Namespace, reactor: Any = None) -> int:
    """Serve until the reactor stops; the process's exit status."""
    if (args.cert is None) != (args.key is None):
        print("--cert and --key go together", file=sys.stderr)
        return 2
    try:
        listen_address(args.listen)
        level = Level.parse(args.log_level)
        users = load_server_users(args.users)
        tls = load_tls(args.cert, args.key) if args.cert is not None else None
    except (StaticUsersError, OSError, ValueError) as error:
        print(f"test-webhook-server: {error}", file=sys.stderr)
        return 2
    try:
        output = start_logging(LogConfig(level=level, format=args.log_format))
    except LogSetupError:
        return 2  # already reported on standard error
    install(output.observer)
    if reactor is None:
        from twisted.internet import reactor
    return _Server(reactor, users, args.listen, tls, output).run()


class _Server:
    """One run of the command: listen, answer, stop on a signal."""

    def __init__(
        self,
        reactor: Any,
        users: dict[str, ServerUser],
        listen: str,
        tls: CertificateOptions | None,
        output: LogOutput,
    ) -> None:
        self._reactor = reactor
        self._log = CodeLogger("conch_container.testing.authconfig")
        self._resource = AuthConfigResource(users, reactor=reactor, log=self._log)
        self._listen = listen
        self._tls = tls
        self._output = output
        self._port: IListeningPort | None = None
        self.status = 0

    def run(self) -> int:
        self._reactor.callWhenRunning(self._start)
        self._reactor.addSystemEventTrigger("before", "shutdown", self._stop)
        self._reactor.run()
        self._output.close()
        return self.status

    def _start(self) -> None:
        self._resource.start()
        listening = serve(self._reactor, self._resource, self._listen, tls=self._tls)
        listening.addCallbacks(self._listening, self._not_listening)

    def _listening(self, port: IListeningPort) -> None:
        self._port = port
        bound = port.getHost()
        host, number = getattr(bound, "host", ""), getattr(bound, "port", 0)
        address = f"[{host}]:{number}" if ":" in host else f"{host}:{number}"
        self._log.event(
            messages.CONFIG_SERVER_AVAILABLE,
            "The test webhook server is listening on {address} ({scheme})",
            address=address,
            scheme="https" if self._tls is not None else "http",
        )

    def _not_listening(self, failure: Failure) -> None:
        print(
            f"test-webhook-server: cannot listen on {self._listen}: {failure.getErrorMessage()}",
            file=sys.stderr,
        )
        self.status = 1
        self._reactor.stop()

    def _stop(self) -> Deferred[None] | None:
        port, self._port = self._port, None
        self._resource.stop()
        if port is None:
            return None
        stopped: Deferred[None] = Deferred.fromCoroutine(self._stop_listening(port))
        return stopped

    async def _stop_listening(self, port: IListeningPort) -> None:
        await maybeDeferred(port.stopListening)
        self._log.event(messages.TEST_WEBHOOK_STOPPED, "The test webhook server stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m conch_container.testing.authconfig``."""
    parser = argparse.ArgumentParser(
        prog="python -m conch_container.testing.authconfig", description=DESCRIPTION
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
