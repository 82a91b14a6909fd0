"""Tests for the test webhook server's users file and per-user configuration."""

from __future__ import annotations

import importlib.resources
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.auth.users_file import StaticUsersError, parse_users
from conch_container.config import apply_override
from conch_container.testing.authconfig.override import override_document, validation_base
from conch_container.testing.authconfig.users import load_server_users, parse_server_users
from tests.testing.authconfig_support import HASH, USERS_YAML


def _error(text: str) -> StaticUsersError:
    try:
        parse_server_users(text, "users.yaml")
    except StaticUsersError as error:
        return error
    raise AssertionError("the users file was accepted")


def _with(user: str) -> str:
    return f'users:\n  alice:\n    passwordHash: "{HASH}"\n' + user


class UsersFileTests(SynchronousTestCase):
    def test_static_keys_and_server_keys(self) -> None:
        """A user has the static file's keys plus files, authorize and config."""
        users = parse_server_users(USERS_YAML)
        alice, bob = users["alice"], users["bob"]
        self.assertEqual(alice.static.environment["TEAM"].value, "blue")
        self.assertTrue(alice.static.environment["TOKEN"].sensitive)
        self.assertEqual(alice.files["/home/user/motd"].value, b"hello\n")
        self.assertTrue(alice.files["/home/user/.secret"].sensitive)
        self.assertTrue(alice.authorize)
        self.assertFalse(bob.authorize)
        self.assertEqual(bob.config, {})

    def test_static_parser_still_refuses_server_keys(self) -> None:
        """The embedded static authentication's file format is unchanged."""
        with self.assertRaises(StaticUsersError) as caught:
            parse_users(USERS_YAML, "users.yaml")
        self.assertIn("users.alice.", str(caught.exception))
        self.assertIn("unknown key", str(caught.exception))

    def test_errors_name_the_key_path(self) -> None:
        """Every problem is reported with the file and the key path of the problem."""
        cases = {
            "    authorize: maybe\n": "users.yaml: users.alice.authorize: must be true or false",
            "    files: {relative/path: x}\n": "users.yaml: users.alice.files.relative/path: ",
            "    files: {/a/../b: x}\n": "users.yaml: users.alice.files./a/../b: ",
            "    files: {/a: 5}\n": "users.yaml: users.alice.files./a: must be a string",
            "    colour: red\n": "users.yaml: users.alice.colour: unknown key",
            "    config: {dockr: {}}\n": "users.yaml: users.alice.config.dockr: unknown key",
            "    config: {docker: {timeouts: {containerStart: soon}}}\n": (
                "users.yaml: users.alice.config.docker.timeouts.containerStart: "
            ),
            "    config: {docker: {execution: {host: {resources: {memory: lots}}}}}\n": (
                "users.yaml: users.alice.config.docker.execution.host.resources.memory: "
                "must be an integer"
            ),
            "    config: [docker]\n": "users.yaml: users.alice.config: ",
        }
        for user, expected in cases.items():
            with self.subTest(user=user):
                self.assertTrue(str(_error(_with(user))).startswith(expected), _error(_with(user)))

    def test_merged_configuration_is_validated(self) -> None:
        """An override the gateway would refuse once merged is refused at load time."""
        # Each value is fine on its own; the whole lacks the file method static needs.
        error = _error(_with("    config: {auth: {password: {method: static}}}\n"))
        self.assertEqual(
            str(error),
            "users.yaml: users.alice.config.auth.password.static.usersFile: "
            "is required when method is static",
        )

    def test_yaml_errors(self) -> None:
        """Malformed YAML and a missing users key are refused, naming the file."""
        self.assertIn("users.yaml: ", str(_error("users: [")))
        self.assertEqual(str(_error("other: {}")), "users.yaml: other: unknown key")


class OverrideDocumentTests(SynchronousTestCase):
    def test_json_shape(self) -> None:
        """Durations become nanoseconds and Docker structures take Engine API names."""
        document = parse_server_users(USERS_YAML)["alice"].config
        self.assertEqual(
            document,
            {
                "docker": {
                    "execution": {
                        "container": {"Image": "alpine:3.20", "Env": ["A=b"]},
                        "host": {"Memory": 1000000},
                    },
                    "timeouts": {"containerStart": 90_000_000_000},
                },
                "security": {"maxSessions": 2},
            },
        )

    def test_only_given_keys(self) -> None:
        """Settings the override does not name are left out of the answer."""
        self.assertEqual(override_document({"ssh": {"banner": "hi"}}), {"ssh": {"banner": "hi"}})
        self.assertEqual(override_document(None), {})

    def test_gateway_accepts_what_is_returned(self) -> None:
        """The gateway's own merge accepts the JSON answer and gets the YAML's settings."""
        raw: dict[str, Any] = {
            "docker": {
                "execution": {"container": {"image": "alpine:3.20", "env": ["A=b"]}},
                "timeouts": {"containerStart": "1m30s"},
            },
            "log": {"level": "debug"},
        }
        base = validation_base()
        from_json = apply_override(base, override_document(raw), source_format="json")
        from_yaml = apply_override(base, raw, source_format="yaml")
        self.assertEqual(from_json, from_yaml)
        self.assertEqual(from_json.docker.timeouts.container_start, 90.0)

    def test_example_users(self) -> None:
        """Every user of the demo's example users file loads, with a config the gateway accepts."""
        example = importlib.resources.files("conch_container") / "demo" / "webhook-users.yaml"
        with importlib.resources.as_file(example) as path:
            users = load_server_users(str(path))
        self.assertEqual(sorted(users), ["demo", "ops", "visitor"])
        base = validation_base()
        for name, user in users.items():
            with self.subTest(user=name):
                merged = apply_override(base, dict(user.config), source_format="json")
                if name == "ops":
                    self.assertEqual(merged.docker.execution.container["Hostname"], "ops")
                    self.assertEqual(merged.docker.timeouts.command_start, 30.0)
