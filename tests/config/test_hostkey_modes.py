"""Private host keys on disk: who may read them, real files and real modes."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from typing import Any, cast

import yaml
from twisted.logger import ILogObserver, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli, messages
from conch_container.config import load_config, parse_config
from conch_container.config.hostkeys import generate_and_store_host_key, private_mode
from conch_container.config.kinds import private_file_exposure
from conch_container.log import CodeLogger
from conch_container.tap import ensure_host_key

from .material import ed25519_pem, write

AUTH = """\
auth:
  password:
    method: webhook
    webhook:
      url: http://127.0.0.1:8080
"""
NOBODY = 65534


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def capturing_logger() -> tuple[CodeLogger, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    return CodeLogger("tests", observer=cast(ILogObserver, events.append)), events


class GeneratedKeyWriteBackTests(SynchronousTestCase):
    """A generated host key goes into the configuration file, which others then cannot read."""

    def store(
        self, mode: int, text: str = AUTH, name: str = "config.yaml"
    ) -> tuple[str, list[Any]]:
        path = write(os.path.abspath(self.mktemp()), name, text, mode=mode)
        log, events = capturing_logger()
        generate_and_store_host_key(path, log=log)
        return path, events

    def restricted(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        code = messages.CORE_CONFIG_FILE_MODE_RESTRICTED.code
        return [event for event in events if event.get("code") == code]

    def test_world_readable_becomes_private(self) -> None:
        """A 0644 file holding the new key is rewritten 0600, and the change is logged."""
        path, events = self.store(0o644)
        self.assertEqual(mode_of(path), 0o600)
        [event] = self.restricted(events)
        self.assertEqual((event["before"], event["after"]), ("0644", "0600"))
        self.assertEqual(event["file"], path)
        self.assertEqual(len(load_config(path).ssh.hostkeys), 1)

    def test_group_readable_becomes_private(self) -> None:
        """Group access goes too (0640 becomes 0600)."""
        path, events = self.store(0o640)
        self.assertEqual(mode_of(path), 0o600)
        self.assertEqual(len(self.restricted(events)), 1)

    def test_private_file_unchanged_and_quiet(self) -> None:
        """A 0600 file stays 0600 and nothing is logged about its mode."""
        path, events = self.store(0o600)
        self.assertEqual(mode_of(path), 0o600)
        self.assertEqual(self.restricted(events), [])

    def test_read_only_owner_kept(self) -> None:
        """An owner-only read-only file (0400) stays 0400."""
        path, events = self.store(0o400)
        self.assertEqual(mode_of(path), 0o400)
        self.assertEqual(self.restricted(events), [])

    def test_json_file(self) -> None:
        """A JSON configuration is made private in the same way."""
        text = json.dumps({"auth": {"password": {"method": "webhook"}}})
        path, events = self.store(0o664, text=text, name="config.json")
        self.assertEqual(mode_of(path), 0o600)
        self.assertEqual(len(self.restricted(events)), 1)

    def test_owner_kept(self) -> None:
        """The file still belongs to the user it belonged to."""
        if os.geteuid() != 0:
            raise self.skipTest("only root can give a file to another user")
        path = write(os.path.abspath(self.mktemp()), "config.yaml", AUTH, mode=0o644)
        os.chown(path, NOBODY, NOBODY)
        generate_and_store_host_key(path, log=capturing_logger()[0])
        status = os.stat(path)
        self.assertEqual((status.st_uid, stat.S_IMODE(status.st_mode)), (NOBODY, 0o600))

    def test_startup_path(self) -> None:
        """The start-up code that generates a missing key leaves a 0644 file private."""
        path = write(os.path.abspath(self.mktemp()), "config.yaml", AUTH, mode=0o644)
        log, events = capturing_logger()
        with capturedLogs() as global_events:
            config = ensure_host_key(load_config(path), path, log)
        self.assertEqual(len(config.ssh.hostkeys), 1)
        self.assertEqual(load_config(path).ssh.hostkeys, config.ssh.hostkeys)
        self.assertEqual(mode_of(path), 0o600)
        # Reported once, on start-up's logger or, failing that, the global log.
        self.assertEqual(len(self.restricted([*events, *global_events])), 1)

    def test_private_mode(self) -> None:
        """private_mode drops group and other bits and keeps the owner's."""
        self.assertEqual(private_mode(0o100644), 0o600)
        self.assertEqual(private_mode(0o777), 0o700)
        self.assertEqual(private_mode(0o400), 0o400)


class HostKeyFileModeTests(SynchronousTestCase):
    """A host key file others may read is reported, as sshd refuses such a file."""

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())

    def key_file(self, mode: int, owner: int | None = None) -> str:
        path = write(self.directory, "ssh_host_ed25519_key", ed25519_pem(), mode=mode)
        if owner is not None:
            if os.geteuid() != 0:
                raise self.skipTest("only root can give a file to another user")
            os.chown(path, owner, -1)
        return path

    def warnings_for(self, path: str) -> list[tuple[str, str, str]]:
        config = parse_config({"ssh": {"hostkeys": [ed25519_pem(), path]}})
        return [(w.code.code, w.key_path, w.message) for w in config.warnings]

    def test_world_readable_warned(self) -> None:
        """A 0644 key file is a CONFIG_PRIVATE_KEY_FILE_READABLE warning naming file and mode."""
        path = self.key_file(0o644)
        [(code, key_path, message)] = self.warnings_for(path)
        self.assertEqual(code, "CONFIG_PRIVATE_KEY_FILE_READABLE")
        self.assertEqual(key_path, "ssh.hostkeys[1]")
        self.assertIn(f"{path} (mode 0644)", message)
        self.assertIn("every user of this machine", message)
        self.assertIn(f"chmod 600 {path}", message)

    def test_group_readable_own_file_warned(self) -> None:
        """A 0640 key file of the gateway's own user is warned about (sshd's rule)."""
        path = self.key_file(0o640)
        [(_, _, message)] = self.warnings_for(path)
        self.assertIn("the file's group", message)

    def test_group_writable_warned(self) -> None:
        """Write access for the group is as bad as read access."""
        path = self.key_file(0o620)
        self.assertEqual(len(self.warnings_for(path)), 1)

    def test_private_quiet(self) -> None:
        """A 0600 (or 0400) key file loads without a word."""
        self.assertEqual(self.warnings_for(self.key_file(0o600)), [])
        self.assertEqual(self.warnings_for(self.key_file(0o400)), [])

    def test_group_read_of_another_users_file_quiet(self) -> None:
        """A key owned by another user that the gateway reads through its group is fine."""
        self.assertEqual(self.warnings_for(self.key_file(0o640, owner=NOBODY)), [])

    def test_world_readable_another_users_file_warned(self) -> None:
        """Everyone-readable is warned about whoever owns the file."""
        self.assertEqual(len(self.warnings_for(self.key_file(0o604, owner=NOBODY))), 1)

    def test_inline_key_quiet(self) -> None:
        """An inline PEM key has no file mode to check."""
        self.assertEqual(parse_config({"ssh": {"hostkeys": [ed25519_pem()]}}).warnings, ())

    def test_other_pem_files_not_checked(self) -> None:
        """Certificates named in the configuration are public: no warning for their mode."""
        path = write(self.directory, "ca.pem", "-----BEGIN CERTIFICATE-----\n", mode=0o644)
        self.assertEqual(parse_config({"configserver": {"cacert": path}}).warnings, ())

    def test_exposure_rule(self) -> None:
        """private_file_exposure: others never; the group only on a file of another user."""
        status = os.stat(self.key_file(0o600))

        def exposure(mode: int, uid: int) -> str | None:
            fields = list(status)
            fields[stat.ST_MODE], fields[stat.ST_UID] = stat.S_IFREG | mode, uid
            return private_file_exposure(os.stat_result(fields))

        me = os.geteuid()
        other = me + 1
        self.assertIsNone(exposure(0o600, me))
        self.assertIsNotNone(exposure(0o604, other))
        self.assertIsNotNone(exposure(0o640, me))
        self.assertIsNone(exposure(0o640, other))

    def test_check_config_prints_it(self) -> None:
        """check-config accepts the file and prints the warning with its code."""
        key = self.key_file(0o644)
        data = yaml.safe_load(AUTH)
        data["ssh"] = {"hostkeys": [key]}
        config = write(self.directory, "config.yaml", yaml.safe_dump(data), mode=0o600)
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.assertEqual(cli.main(["check-config", "-c", config]), 0)
        self.assertIn(
            f"{config}: warning: ssh.hostkeys[0]: the private key file {key} (mode 0644)",
            stderr.getvalue(),
        )
        self.assertIn("(CONFIG_PRIVATE_KEY_FILE_READABLE)", stderr.getvalue())
