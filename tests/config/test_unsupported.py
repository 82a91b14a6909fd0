"""Features not built yet: refused, or run without with a warning, never silently ignored."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import yaml
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli, messages
from conch_container.config import ConfigError, load_config, parse_config
from conch_container.config.unsupported import (
    NOT_YET_SUPPORTED,
    REFUSE,
    WARN,
    Unsupported,
    check_unsupported,
    enabled_features,
)
from conch_container.tap import Options

from .material import ed25519_pem, fixture, write

WEBHOOK_AUTH = {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}}

#: For every row of the table, settings that switch it on, and nothing else.
ENABLING: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("backend", REFUSE, {"backend": "sshproxy"}),
    ("auth.password.method", REFUSE, {"auth": {"password": {"method": "kerberos"}}}),
    (
        "auth.keyboardInteractive.method",
        REFUSE,
        {"auth": {**WEBHOOK_AUTH, "keyboardInteractive": {"method": "oauth2"}}},
    ),
    (
        "auth.gssapi.method",
        REFUSE,
        {"auth": {**WEBHOOK_AUTH, "gssapi": {"method": "kerberos"}}},
    ),
    ("geoip.provider", WARN, {"geoip": {"provider": "maxmind"}}),
)

#: Every feature mentioned but left off, as a ContainerSSH --dump-config writes it.
MENTIONED_ONLY: dict[str, Any] = {
    "auth": {
        **WEBHOOK_AUTH,
        "keyboardInteractive": {"method": "", "oauth2": {"provider": "github"}},
        "gssapi": {"method": ""},
    },
    "configserver": {"url": "", "transmitSensitiveMetadata": True},
    "audit": {"enable": False, "format": "binary", "storage": "s3"},
    "security": {"forwarding": {"forwardingMode": "disable", "x11ForwardingMode": "disable"}},
    "metrics": {"enable": False},
    "health": {"enable": False},
    "geoip": {"provider": "dummy"},
    "backend": "docker",
    "kubernetes": {"connection": {"host": "k8s.example"}},
    "sshproxy": {"server": "ssh.example"},
}


def configuration(**sections: Any) -> dict[str, Any]:
    """A complete configuration (password webhook on loopback) with ``sections`` added."""
    return {"auth": WEBHOOK_AUTH, **sections}


class TableTests(SynchronousTestCase):
    """The table itself: each row fires for its feature and for nothing else."""

    def rows_for(self, overlay: dict[str, Any]) -> tuple[Unsupported, ...]:
        return enabled_features(parse_config(configuration(**overlay)))

    def test_each_row(self) -> None:
        """Each example switches on exactly one row, with the key path and action expected."""
        for key_path, action, overlay in ENABLING:
            rows = self.rows_for(overlay)
            self.assertEqual([(r.key_path, r.action) for r in rows], [(key_path, action)], overlay)

    def test_every_row_exercised(self) -> None:
        """The examples above reach every row of the table (a new row needs its example)."""
        reached = {row for _, _, overlay in ENABLING for row in self.rows_for(overlay)}
        self.assertEqual(reached, set(NOT_YET_SUPPORTED))

    def test_messages_say_not_supported_yet(self) -> None:
        """Every row tells the operator the feature is not supported yet."""
        for row in NOT_YET_SUPPORTED:
            self.assertIn("not supported yet", row.message, row.key_path)

    def test_kubernetes_modes_quiet(self) -> None:
        """The Kubernetes backend in any of its modes enables nothing not yet supported."""
        persistent = {"mode": "persistent", "metadata": {"name": "p"}, "createMissingPods": True}
        for overlay in (
            {"backend": "kubernetes"},
            {"backend": "kubernetes", "kubernetes": {"pod": {"mode": "connection"}}},
            {"backend": "kubernetes", "kubernetes": {"pod": {"mode": "session"}}},
            {"backend": "kubernetes", "kubernetes": {"pod": persistent}},
        ):
            self.assertEqual(self.rows_for(overlay), (), overlay)

    def test_defaults_quiet(self) -> None:
        """The default configuration switches on nothing that is missing."""
        self.assertEqual(enabled_features(parse_config(configuration())), ())

    def test_mentioned_but_off_quiet(self) -> None:
        """Sections that name a feature but leave it off neither refuse nor warn."""
        self.assertEqual(check_unsupported(parse_config(MENTIONED_ONLY)), ())


class CheckTests(SynchronousTestCase):
    """check_unsupported: a ConfigError for what cannot be missing, warnings for the rest."""

    def test_refused(self) -> None:
        """Each refused feature is a ConfigError naming its key and saying 'not supported yet'."""
        for key_path, action, overlay in ENABLING:
            if action != REFUSE:
                continue
            with self.assertRaises(ConfigError) as raised:
                check_unsupported(parse_config(configuration(**overlay)))
            self.assertEqual(raised.exception.key_path, key_path)
            self.assertTrue(
                str(raised.exception).startswith(f"{key_path}: "), str(raised.exception)
            )
            self.assertIn("not supported yet", raised.exception.problem)

    def test_warned(self) -> None:
        """Each feature the gateway can lack is one CONFIG_UNSUPPORTED_FEATURE warning."""
        for key_path, action, overlay in ENABLING:
            if action != WARN:
                continue
            warnings = check_unsupported(parse_config(configuration(**overlay)))
            self.assertEqual(
                [(w.code, w.key_path) for w in warnings],
                [(messages.CONFIG_UNSUPPORTED_FEATURE, key_path)],
            )

    def test_refusal_wins_over_warnings(self) -> None:
        """A file with both kinds is refused, naming the feature it cannot run without."""
        config = parse_config(configuration(geoip={"provider": "maxmind"}, backend="sshproxy"))
        with self.assertRaises(ConfigError) as raised:
            check_unsupported(config)
        self.assertEqual(raised.exception.key_path, "backend")


def maxmind(directory: str) -> dict[str, str]:
    """A ``geoip`` section asking for MaxMind lookups, with a database file that exists."""
    database = write(directory, "GeoIP2-Country.mmdb", "", mode=0o600)
    return {"provider": "maxmind", "maxmind-geoip2-file": database}


class LoadTests(SynchronousTestCase):
    """load_config applies the table, so check-config, dump-config and twistd all do."""

    def write_config(self, data: dict[str, Any]) -> str:
        directory = os.path.abspath(self.mktemp())
        return write(directory, "config.yaml", yaml.safe_dump(data), mode=0o600)

    def test_refused_at_load(self) -> None:
        """A file enabling a feature the gateway cannot run without does not load."""
        path = self.write_config(configuration(backend="sshproxy"))
        with self.assertRaises(ConfigError) as raised:
            load_config(path)
        self.assertEqual(raised.exception.key_path, "backend")

    def test_refused_before_validation(self) -> None:
        """The missing feature is named even when the settings it would supply are incomplete.

        A file naming a backend this version lacks need not fill in the
        Docker section; the operator must hear about the backend first.
        """
        path = self.write_config(
            configuration(
                backend="sshproxy",
                docker={"execution": {"container": {"image": ""}}},
            )
        )
        with self.assertRaises(ConfigError) as raised:
            load_config(path)
        self.assertEqual(raised.exception.key_path, "backend")

    def test_warned_at_load(self) -> None:
        """A feature the gateway can lack loads, with its warning among the config's warnings."""
        path = self.write_config(configuration(geoip=maxmind(os.path.abspath(self.mktemp()))))
        config = load_config(path)
        self.assertEqual(config.geoip.provider, "maxmind")
        self.assertEqual(
            [(w.code, w.key_path) for w in config.warnings],
            [(messages.CONFIG_UNSUPPORTED_FEATURE, "geoip.provider")],
        )

    def test_full_dump_still_loads_quietly(self) -> None:
        """ContainerSSH 0.4's full dump mentions every feature, switched off: no new warnings."""
        config = load_config(fixture("config-0.4-full.yaml"))
        self.assertEqual([w.code for w in config.warnings], [messages.CONFIG_AUTH_URL_DEPRECATED])


class CommandTests(SynchronousTestCase):
    """What the operator sees from conch-container check-config and dump-config."""

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.stdout = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.patch(sys, "stdout", self.stdout)
        self.directory = os.path.abspath(self.mktemp())

    def write_config(self, **sections: Any) -> str:
        data = configuration(ssh={"hostkeys": [ed25519_pem()]}, **sections)
        return write(self.directory, "config.yaml", yaml.safe_dump(data), mode=0o600)

    def test_check_config_refuses(self) -> None:
        """check-config exits 1 and names the key of a feature the gateway cannot run without."""
        path = self.write_config(backend="sshproxy")
        self.assertEqual(cli.main(["check-config", "-c", path]), 1)
        self.assertIn(
            f"{path}: backend: the SSH proxy backend (sshproxy) is not supported yet",
            self.stderr.getvalue(),
        )
        self.assertIn("CORE_CONFIG_ERROR", self.stderr.getvalue())

    def test_check_config_prints_warning(self) -> None:
        """check-config accepts a feature the gateway can lack and prints its warning."""
        path = self.write_config(geoip=maxmind(self.directory))
        self.assertEqual(cli.main(["check-config", "-c", path]), 0)
        self.assertIn(
            f"{path}: warning: geoip.provider: GeoIP lookups are not supported yet",
            self.stderr.getvalue(),
        )
        self.assertIn("(CONFIG_UNSUPPORTED_FEATURE)", self.stderr.getvalue())

    def test_dump_config_refuses(self) -> None:
        """dump-config prints nothing on stdout for a refused file, and the reason on stderr."""
        path = self.write_config(backend="sshproxy")
        self.assertEqual(cli.main(["dump-config", "-c", path]), 1)
        self.assertEqual(self.stdout.getvalue(), "")
        self.assertIn("backend: the SSH proxy backend", self.stderr.getvalue())

    def test_dump_config_warns_on_stderr(self) -> None:
        """dump-config keeps stdout pure YAML and puts the warning on stderr."""
        path = self.write_config(geoip=maxmind(self.directory))
        self.assertEqual(cli.main(["dump-config", "-c", path]), 0)
        self.assertEqual(yaml.safe_load(self.stdout.getvalue())["geoip"]["provider"], "maxmind")
        self.assertIn("warning: geoip.provider:", self.stderr.getvalue())


class StartupTests(SynchronousTestCase):
    """twistd containerssh: refused before daemonising, warnings logged once."""

    def setUp(self) -> None:
        self.patch(sys, "stderr", io.StringIO())
        self.directory = os.path.abspath(self.mktemp())

    def options(self, **sections: Any) -> Options:
        data = configuration(
            ssh={"listen": "127.0.0.1:0", "hostkeys": [ed25519_pem()]},
            log={"destination": "test"},
            **sections,
        )
        path = write(self.directory, "config.yaml", yaml.safe_dump(data), mode=0o600)
        options = Options()
        options.parseOptions(["--config", path])
        claim = getattr(options, "instance", None)
        if claim is not None:
            self.addCleanup(claim.release)
        return options

    def test_refused_before_start(self) -> None:
        """A feature the gateway cannot run without is a usage error naming the key."""
        with self.assertRaises(usage.UsageError) as raised:
            self.options(auth={**WEBHOOK_AUTH, "gssapi": {"method": "kerberos"}})
        self.assertIn("auth.gssapi.method: GSSAPI (Kerberos)", str(raised.exception))
        self.assertIn("not supported yet", str(raised.exception))

    def test_warning_logged_once(self) -> None:
        """A feature the gateway runs without is logged once at start-up, with its code."""
        options = self.options(geoip=maxmind(self.directory))
        assert options.log_output is not None and options.log_output.memory is not None
        codes = [record.code for record in options.log_output.memory.records]
        self.assertEqual(codes.count("CONFIG_UNSUPPORTED_FEATURE"), 1)
