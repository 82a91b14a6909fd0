"""The ``conch-container`` command: check or dump a configuration, hash a password, run, probe.

``twistd containerssh`` is how the gateway runs; this command holds the
operator's other tools, the equivalents of ContainerSSH's ``--dump-config``
and friends.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred

from conch_container import __version__, messages
from conch_container.audit.decodecli import add_audit_parser
from conch_container.auth.static import hash_password
from conch_container.backend.registry import BackendNotAvailable, check_backend_config
from conch_container.config import ConfigError, ConfigWarning, dump_config, load_config
from conch_container.endpoints import check_endpoints
from conch_container.health.check import probe, public_url
from conch_container.httpserver import TLSConfigError
from conch_container.log.setup import emit_early
from conch_container.ssh.preflight import check_ssh_offer
from conch_container.testing.authconfig import command as test_webhook_server


def _check(path: str) -> int:
    try:
        config = check_backend_config(load_config(path))
        check_endpoints(config)
        check_ssh_offer(config.ssh)
    except (BackendNotAvailable, TLSConfigError) as error:
        emit_early(messages.CORE_CONFIG_ERROR, "Invalid configuration: {reason}", reason=str(error))
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    except ConfigError as error:
        _print_warnings(path, error.warnings)
        emit_early(
            messages.CORE_CONFIG_ERROR,
            "Invalid configuration in {file}: {reason}",
            file=os.path.abspath(path),
            reason=str(error),
        )
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    _print_warnings(path, config.warnings)
    return 0


def _print_warnings(path: str, warnings: Sequence[ConfigWarning]) -> None:
    """One line on stderr per warning: what still works but should change, or runs without."""
    for warning in warnings:
        print(f"{path}: warning: {warning} ({warning.code.code})", file=sys.stderr)


def check_config(args: argparse.Namespace) -> int:
    """Validate the file; print nothing on stdout; exit 0 when valid."""
    status = _check(args.config)
    if status == 0:
        emit_early(
            messages.CORE_CONFIG_VALID,
            "Configuration {file} is valid",
            file=os.path.abspath(args.config),
        )
    return status


def dump(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults filled in) as YAML; warnings go to stderr."""
    try:
        config = check_backend_config(load_config(args.config))
    except (ConfigError, BackendNotAvailable) as error:
        if isinstance(error, ConfigError):
            _print_warnings(args.config, error.warnings)
        print(f"{args.config}: {error}", file=sys.stderr)
        return 1
    _print_warnings(args.config, config.warnings)
    sys.stdout.write(dump_config(config))
    return 0


def hash_password_command(args: argparse.Namespace) -> int:
    """Print a bcrypt hash for a users file; reads the password from the terminal or stdin."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("refusing an empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def health_check(args: argparse.Namespace) -> int:
    """Exit 0 when the gateway's health endpoint answers 200 within the client's timeout.

    The equivalent of ContainerSSH's ``--healthcheck``, for a Docker
    ``HEALTHCHECK`` or a Kubernetes exec probe. With ``health.enable: false``
    nothing listens, so it fails at once and says why rather than after a
    connection attempt.
    """
    try:
        config = load_config(args.config)
    except ConfigError as error:
        emit_early(messages.CORE_CONFIG_ERROR, "Invalid configuration: {reason}", reason=str(error))
        print(f"{args.config}: {error}", file=sys.stderr)
        return 1
    url = public_url(config.health.client.url)
    if not config.health.enable:
        reason = "health.enable is false: the gateway serves no health endpoint"
        emit_early(
            messages.CORE_HEALTH_CHECK_FAILED, "Health check failed: {reason}", reason=reason
        )
        return 1
    from twisted.internet.task import react

    async def check(reactor: Any) -> None:
        result = await probe(reactor, config.health.client)
        if result.healthy:
            emit_early(
                messages.CORE_HEALTH_CHECK_SUCCESSFUL, "Health check of {url} passed", url=url
            )
            return
        emit_early(
            messages.CORE_HEALTH_CHECK_FAILED,
            "Health check of {url} failed: {reason}",
            url=url,
            reason=result.reason,
            status=result.status,
        )
        raise SystemExit(1)

    react(lambda reactor: Deferred.fromCoroutine(check(reactor)))
    return 0  # not reached: react exits


def run(args: argparse.Namespace) -> int:
    """Run the gateway in the foreground (``twistd --nodaemon containerssh``)."""
    if _check(args.config) != 0:
        return 1
    argv = [sys.executable, "-m", "twisted.scripts.twistd", "--nodaemon", "--pidfile="]
    argv += ["containerssh", "--config", args.config]
    os.execv(sys.executable, argv)
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conch-container", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"conch-container {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function, text in (
        ("check-config", check_config, "validate a configuration file"),
        ("dump-config", dump, "print the effective configuration"),
        ("run", run, "run the gateway in the foreground"),
        ("health-check", health_check, "exit 0 when the gateway's health endpoint answers ok"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("-c", "--config", default="config.yaml", help="configuration file")
        command.set_defaults(function=function)
    hasher = commands.add_parser("hash-password", help="bcrypt-hash a password for a users file")
    hasher.set_defaults(function=hash_password_command)
    add_audit_parser(commands)
    webhook_server = commands.add_parser(
        "test-webhook-server", help=test_webhook_server.DESCRIPTION
    )
    test_webhook_server.add_arguments(webhook_server)
    webhook_server.set_defaults(function=test_webhook_server.run)
    args = parser.parse_args(argv)
    return int(args.function(args))


if __name__ == "__main__":
    sys.exit(main())
