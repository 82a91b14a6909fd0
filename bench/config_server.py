"""A configuration server for the benchmark: the project's test server on a loopback port.

It answers ``POST /config`` for the benchmark user with a small per-user
configuration (a container variable, an environment variable and a security
setting), the kind of answer a real server gives. Run as::

    python bench/config_server.py --port PORT --user bench

and it serves until SIGTERM.
"""

from __future__ import annotations

import argparse

from twisted.internet import reactor

from conch_container.testing.webhook import AuthWebhookResource, WebhookUser, listen_tcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args()
    resource = AuthWebhookResource(
        {
            args.user: WebhookUser(
                config={
                    "docker": {"execution": {"container": {"env": ["FROM_CONFIG=1"]}}},
                    "security": {"maxSessions": 10},
                },
                config_environment={"PROJECT": "bench"},
            )
        }
    )
    listen_tcp(reactor, resource, port=args.port)
    reactor.run()


if __name__ == "__main__":
    main()
