"""The per-connection limits at their defaults, seen from the real OpenSSH client.

An ordinary session (a terminal, a few variables through ``SetEnv``, a
shell, a large download) must not come near any of them: nothing is
refused, no window or packet size is clamped, and every byte arrives.
"""

from __future__ import annotations

import shlex

from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.gateway import GatewayTestCase

#: 50 MB: well past the 16 MiB window cap, so the download needs many window adjusts.
DOWNLOAD_BYTES = 50 * 1000 * 1000

#: Codes that would mean a limit was reached, or a client's announced sizes were cut.
LIMIT_CODES = {
    "SSH_CHANNEL_LIMIT",
    "SSH_CHANNEL_REQUESTS_FLOOD",
    "SSH_ENV_LIMIT",
    "SSH_WINDOW_CLAMPED",
    "SSH_WINDOW_OVERFLOW",
    "SSH_DECODE_FAILED",
}

SET_ENV = "SetEnv=ALPHA=one BETA=two GAMMA=three"


class DefaultLimitsTests(GatewayTestCase):
    """The defaults of ``ssh.max*`` against an everyday OpenSSH session."""

    def assert_no_limit_reached(self) -> None:
        self.assertEqual(LIMIT_CODES & set(self.logged_codes()), set())

    async def test_terminal_shell_with_variables(self) -> None:
        """A terminal shell gets its ``SetEnv`` variables and terminal type."""
        argv = shlex.join(self.ssh_args("-tt", "-o", SET_ENV))
        script = 'echo "[$ALPHA $BETA $GAMMA $TERM]"\\nexit 7\\n'
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh",
            ["-c", f"printf '{script}' | ssh {argv}"],
            env={"TERM": "xterm", "PATH": "/usr/bin:/bin"},
        )
        self.assertEqual(code, 7, err)
        self.assertIn(b"[one two three xterm]\r\n", out)
        self.assert_no_limit_reached()

    async def test_large_download(self) -> None:
        """50 MB of random data arrive intact: the client's hash is the container's.

        The container hashes what it sends (on stderr); the client's copy goes
        through ``sha256sum`` straight from the pipe, never into the test's
        memory.
        """
        remote = (
            f"head -c {DOWNLOAD_BYTES} /dev/urandom | tee /tmp/blob >/dev/null"
            " && sha256sum </tmp/blob >&2 && cat /tmp/blob"
        )
        argv = shlex.join([*self.ssh_args("-o", SET_ENV), remote])
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh",
            ["-c", f"ssh {argv} | sha256sum"],
            env={"PATH": "/usr/bin:/bin"},
        )
        self.assertEqual(code, 0, err)
        sent = err.split()[0]
        received = out.split()[0]
        self.assertEqual(len(sent), 64, err)
        self.assertEqual(received, sent)
        self.assert_no_limit_reached()
