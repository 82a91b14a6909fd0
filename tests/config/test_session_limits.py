"""The ``session`` section: time limits, from a file and from a configuration server."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import AppConfig, ConfigError, parse_config
from conch_container.config.perconnection import connection_config
from conch_container.config.session import SessionConfig


class SessionSectionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """No limits unless configured; a minute's warning and ten seconds' grace."""
        config = AppConfig().session
        self.assertEqual(config, SessionConfig())
        self.assertEqual((config.idle_timeout, config.max_session_duration), (0.0, 0.0))
        self.assertEqual((config.warning, config.grace, config.signal), (60.0, 10.0, "TERM"))

    def test_from_yaml(self) -> None:
        """Go durations, as every duration of the file."""
        config = parse_config(
            {"session": {"idleTimeout": "15m", "maxSessionDuration": "8h", "signal": "HUP"}}
        ).session
        self.assertEqual(config.idle_timeout, 900.0)
        self.assertEqual(config.max_session_duration, 8 * 3600.0)
        self.assertEqual(config.signal, "HUP")

    def test_bad_values_name_the_key(self) -> None:
        """A limit under a second, a negative warning or an unknown signal stops the load."""
        for data, key in [
            ({"idleTimeout": "500ms"}, "session.idleTimeout"),
            ({"warning": "-1s"}, "session.warning"),
            ({"signal": "STOP"}, "session.signal"),
            ({"idleTimeot": "1m"}, "session.idleTimeot"),
        ]:
            with self.assertRaises(ConfigError) as raised:
                parse_config({"session": data})
            self.assertEqual(raised.exception.key_path, key)

    def test_per_connection(self) -> None:
        """A configuration server may set the limits for one user, as strings or
        as JSON's integer nanoseconds."""
        base = parse_config(
            {
                "session": {"idleTimeout": "1h"},
                "auth": {"publicKey": {"method": "webhook", "webhook": {"url": "http://h:1"}}},
            }
        )
        merged = connection_config(
            base, {"session": {"idleTimeout": 300 * 10**9, "maxSessionDuration": "2h"}}
        )
        self.assertEqual(merged.session.idle_timeout, 300.0)
        self.assertEqual(merged.session.max_session_duration, 7200.0)
        # And may switch one off: zero takes effect.
        merged = connection_config(base, {"session": {"idleTimeout": 0}})
        self.assertEqual(merged.session.idle_timeout, 0.0)
