"""Generating a host key and writing it back into the configuration file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import textwrap

from twisted.conch.ssh.keys import Key
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import AppConfig, load_config
from conch_container.config.hostkeys import (
    HostKeyWriteError,
    generate_and_store_host_key,
    generate_host_key,
    store_host_key,
    with_host_key,
)
from conch_container.config.loader import read_config_text

from .material import write

AUTH = """\
auth:
  password:
    method: webhook
    webhook:
      url: http://127.0.0.1:8080
"""


class GenerateTests(SynchronousTestCase):
    def test_ed25519_openssh(self) -> None:
        """The generated key is an Ed25519 private key in OpenSSH PEM format."""
        text = generate_host_key()
        self.assertTrue(text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n"))
        key = Key.fromString(text)
        self.assertEqual(key.sshType(), b"ssh-ed25519")
        self.assertFalse(key.isPublic())

    def test_fresh(self) -> None:
        """Every call makes a new key."""
        self.assertNotEqual(generate_host_key(), generate_host_key())

    def test_with_host_key(self) -> None:
        """with_host_key appends to ssh.hostkeys."""
        config = with_host_key(AppConfig(), "K")
        self.assertEqual(config.ssh.hostkeys, ("K",))


class YAMLWriteBackTests(SynchronousTestCase):
    def store(self, text: str, name: str = "config.yaml", mode: int = 0o640) -> tuple[str, str]:
        """Write ``text`` as a config file, add a generated key, return (path, key)."""
        path = write(os.path.abspath(self.mktemp()), name, text, mode=mode)
        before = load_config(path)
        key = generate_and_store_host_key(path)
        after = load_config(path)
        self.assertEqual(after, with_host_key(before, key))
        return path, key

    def test_no_ssh_section(self) -> None:
        """Without an ssh section one is appended; the rest is untouched."""
        original = "# Gateway configuration\n" + AUTH + "backend: docker  # the default\n"
        path, _ = self.store(original)
        text = read_config_text(path)
        self.assertTrue(text.startswith(original))
        self.assertIn("ssh:\n  hostkeys:\n    - |\n      -----BEGIN OPENSSH PRIVATE KEY-----", text)

    def test_ssh_without_hostkeys(self) -> None:
        """Inside an existing ssh section, hostkeys goes first; comments stay with their keys."""
        path, _ = self.store(
            textwrap.dedent(
                """\
                ssh:
                  # Where to listen.
                  listen: 127.0.0.1:2222  # loopback only
                  banner: |
                    Welcome!
                """
            )
            + AUTH
        )
        text = read_config_text(path)
        self.assertIn("ssh:\n  hostkeys:\n    - |\n", text)
        self.assertIn("      -----END OPENSSH PRIVATE KEY-----\n  # Where to listen.\n", text)
        self.assertIn("  listen: 127.0.0.1:2222  # loopback only\n", text)

    def test_empty_hostkeys_list(self) -> None:
        """hostkeys: [] is replaced by the list, keeping the line's comment."""
        path, _ = self.store(
            textwrap.dedent(
                """\
                ssh:
                    listen: 0.0.0.0:2222
                    hostkeys: []  # filled in automatically
                    banner: hi
                """
            )
            + AUTH
        )
        text = read_config_text(path)
        self.assertIn(
            "    hostkeys: # filled in automatically\n      - |\n"
            "        -----BEGIN OPENSSH PRIVATE KEY-----\n",
            text,
        )
        self.assertIn("-----END OPENSSH PRIVATE KEY-----\n    banner: hi\n", text)

    def test_null_hostkeys_and_ssh(self) -> None:
        """hostkeys: (null) and ssh: (null) are filled in place."""
        self.store("ssh:\n  hostkeys:\n  listen: 0.0.0.0:2222\n" + AUTH)
        self.store("ssh:\n" + AUTH)
        self.store("ssh: {}\n" + AUTH)

    def test_empty_file(self) -> None:
        """Even an empty file gets the key (validation aside)."""
        path = write(os.path.abspath(self.mktemp()), "config.yaml", "")
        key = generate_host_key()
        store_host_key(path, key)
        self.assertEqual(
            read_config_text(path), "ssh:\n  hostkeys:\n    - |\n" + textwrap.indent(key, "      ")
        )

    def test_flow_style_falls_back(self) -> None:
        """A layout the in-place edit does not handle is rewritten with the same settings."""
        self.store("ssh: {listen: '0.0.0.0:2222'}\n" + AUTH)

    def test_windows_line_endings(self) -> None:
        """CRLF files stay CRLF."""
        path, _ = self.store(("ssh:\n  listen: 0.0.0.0:2222\n" + AUTH).replace("\n", "\r\n"))
        with open(path, "rb") as file:
            data = file.read()
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""))

    def test_mode_preserved(self) -> None:
        """A file only its owner could read keeps its mode (see test_hostkey_modes for others)."""
        path, _ = self.store(AUTH, mode=0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_no_temporary_files_left(self) -> None:
        """Only the configuration file remains in its directory."""
        path, _ = self.store(AUTH)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["config.yaml"])

    def test_symlink(self) -> None:
        """A symlinked configuration updates the target and keeps the link."""
        directory = os.path.abspath(self.mktemp())
        target = write(directory, "real.yaml", AUTH)
        link = os.path.join(directory, "config.yaml")
        os.symlink(target, link)
        key = generate_and_store_host_key(link)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(load_config(target).ssh.hostkeys, (key,))


class JSONWriteBackTests(SynchronousTestCase):
    def test_json(self) -> None:
        """JSON files get the key in ssh.hostkeys and keep their indentation and keys."""
        data = {
            "auth": {"password": {"method": "webhook", "webhook": {"url": "http://a:1"}}},
            "ssh": {"listen": "0.0.0.0:2222", "hostkeys": []},
            "backend": "docker",
        }
        path = write(os.path.abspath(self.mktemp()), "config.json", json.dumps(data, indent=4))
        before = load_config(path)
        key = generate_and_store_host_key(path)
        self.assertEqual(load_config(path), with_host_key(before, key))
        text = read_config_text(path)
        self.assertTrue(text.startswith('{\n    "auth": {\n'))
        self.assertEqual(json.loads(text)["ssh"]["hostkeys"], [key])

    def test_json_without_ssh(self) -> None:
        """A JSON file without ssh (or with Go-style capitalised keys) is handled."""
        path = write(
            os.path.abspath(self.mktemp()),
            "config.json",
            '{"Auth": {"Password": {"Method": "webhook", "Webhook": {"URL": "http://a:1"}}}}',
        )
        key = generate_and_store_host_key(path)
        self.assertEqual(load_config(path).ssh.hostkeys, (key,))


class WriteFailureTests(SynchronousTestCase):
    def test_read_only_directory(self) -> None:
        """If the directory cannot be written, the error carries the key for this run."""
        # Outside the test tree, whose directories only their owner may search.
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = write(directory, "config.yaml", AUTH, mode=0o644)
        os.chmod(directory, 0o555)
        self.addCleanup(os.chmod, directory, 0o755)
        if os.geteuid() == 0:
            # Root ignores permission bits: make the attempt as an unprivileged user.
            for ancestor in _ancestors(path):
                if not os.stat(ancestor).st_mode & 0o001:
                    raise self.skipTest(f"{ancestor} is not searchable by other users")
            os.seteuid(65534)
            self.addCleanup(os.seteuid, 0)
        with self.assertRaises(HostKeyWriteError) as raised:
            generate_and_store_host_key(path)
        error = raised.exception
        self.assertEqual(error.path, path)
        self.assertEqual(error.reason, "Permission denied")
        self.assertTrue(error.key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----"))
        self.assertEqual(read_config_text(path), AUTH)

    def test_missing_file(self) -> None:
        """A file that cannot be read is a write error too."""
        path = os.path.abspath(os.path.join(self.mktemp(), "config.yaml"))
        self.assertRaises(HostKeyWriteError, store_host_key, path, "K")


def _ancestors(path: str) -> list[str]:
    result: list[str] = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return result
        result.append(parent)
        path = parent
