"""PEM-or-file settings: inline PEM text, or a file read at load time."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import ConfigError, parse_config

from .material import ed25519_pem, write

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class PemOrFileTests(SynchronousTestCase):
    def test_inline(self) -> None:
        """A value starting with ----- (after blanks) is kept as the PEM text."""
        indented = "\n  " + CERT
        config = parse_config({"configserver": {"cacert": indented}})
        self.assertEqual(config.configserver.cacert, indented)

    def test_file(self) -> None:
        """Any other value names a file whose content becomes the value."""
        path = write(self.mktemp(), "ca.pem", CERT)
        config = parse_config({"auth": {"password": {"webhook": {"cacert": path}}}})
        self.assertEqual(config.auth.password.webhook.cacert, CERT)

    def test_relative_file(self) -> None:
        """Relative names are resolved against base_dir when given."""
        directory = os.path.abspath(self.mktemp())
        write(directory, "key.pem", CERT)
        config = parse_config({"metrics": {"key": "key.pem"}}, base_dir=directory)
        self.assertEqual(config.metrics.key, CERT)

    def test_missing_file(self) -> None:
        """An unreadable file is an error naming the key and the file."""
        missing = os.path.abspath(os.path.join(self.mktemp(), "nope.pem"))
        with self.assertRaises(ConfigError) as raised:
            parse_config({"configserver": {"cert": missing}})
        self.assertEqual(
            str(raised.exception),
            f"configserver.cert: cannot read file {missing}: No such file or directory",
        )

    def test_host_keys(self) -> None:
        """Host keys are PEM-or-file each; errors name the list index."""
        key = ed25519_pem()
        path = write(self.mktemp(), "host.key", key)
        config = parse_config({"ssh": {"hostkeys": [key, path]}})
        self.assertEqual(config.ssh.hostkeys, (key, key))
        with self.assertRaises(ConfigError) as raised:
            parse_config({"ssh": {"hostkeys": [key, "/nonexistent/host.key"]}})
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[1]")
        self.assertIn("/nonexistent/host.key", raised.exception.problem)

    def test_proxy_private_key(self) -> None:
        """sshproxy.privateKey is PEM-or-file too."""
        key = ed25519_pem()
        path = write(self.mktemp(), "proxy.key", key)
        self.assertEqual(parse_config({"sshproxy": {"privateKey": path}}).sshproxy.private_key, key)

    def test_inline_only_fields(self) -> None:
        """Docker and Kubernetes certificates are inline text, never file names."""
        config = parse_config(
            {
                "docker": {"connection": {"cacert": "/does/not/exist"}},
                "kubernetes": {"connection": {"cacert": "<cacert>\n"}},
            }
        )
        self.assertEqual(config.docker.connection.cacert, "/does/not/exist")
        self.assertEqual(config.kubernetes.connection.cacert, "<cacert>\n")

    def test_empty(self) -> None:
        """An empty value stays empty and reads nothing."""
        self.assertEqual(parse_config({"configserver": {"key": ""}}).configserver.key, "")

    def test_file_without_pem(self) -> None:
        """A file that holds no PEM text is refused at load, naming the key and the file.

        Kept as text it would be unusable anyway, and a dumped configuration
        holding it would read it back as a file name.
        """
        directory = os.path.abspath(self.mktemp())
        write(directory, "ca.txt", "hello\n")
        with self.assertRaises(ConfigError) as raised:
            parse_config({"configserver": {"cacert": "ca.txt"}}, base_dir=directory)
        self.assertEqual(
            str(raised.exception),
            "configserver.cacert: file ca.txt holds no PEM text (it should start with -----BEGIN)",
        )

    def test_empty_file(self) -> None:
        """An empty file gives an empty value, as an empty setting does."""
        path = write(self.mktemp(), "empty.pem", "")
        self.assertEqual(parse_config({"configserver": {"cacert": path}}).configserver.cacert, "")
