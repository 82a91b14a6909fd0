"""``backend: kubernetes`` in ``session`` mode end to end: a pod per session channel.

The real gateway and OpenSSH client, the test API server (each pod a
container of the local Docker engine). After each case no pod is left.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue

from tests.integration.test_kubernetes import KubernetesGatewayCase


class KubernetesSessionModeGatewayTests(KubernetesGatewayCase):
    """The Kubernetes backend in session mode, through the OpenSSH client."""

    def kubernetes_section(self) -> dict[str, Any]:
        section = super().kubernetes_section()
        section["pod"]["mode"] = "session"
        return section

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        # Runs before the gateway and the API server stop (cleanups run last first).
        self.addCleanup(lambda: Deferred.fromCoroutine(self.assert_no_pod_left()))

    async def assert_no_pod_left(self) -> None:
        """Every session's pod is deleted once its session ended (within podStop)."""
        self.assertEqual(await self.own_pods_once_deleted(), [])

    async def test_exec_exit_code_program_is_pid_1(self) -> None:
        """The command runs as its pod's main process; its exit code comes back."""
        out, err, code = await self.ssh("echo $((6*7)) $$; exit 3")
        self.assertEqual(code, 3, err)
        self.assertEqual(out, b"42 1\n")
        codes = self.logged_codes()
        for expected in (
            "KUBERNETES_POD_CREATE",
            "KUBERNETES_POD_WAIT",
            "KUBERNETES_POD_ATTACH",
            "KUBERNETES_POD_REMOVE",  # begun once the program ended; done before the cleanup
        ):
            self.assertIn(expected, codes)

    async def test_shell_with_terminal_and_interrupt(self) -> None:
        """A terminal shell sees its size and TERM; ^C interrupts its foreground program."""
        argv = " ".join(self.ssh_args("-tt"))
        script = (
            "(printf 'tput cols; echo $TERM\\n'; "
            "printf 'sleep 60; echo $((40+2))\\n'; sleep 3; printf '\\003'; sleep 1; "
            "printf 'echo after-$((1+1))\\nexit 5\\n') | ssh " + argv
        )
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh", ["-c", script], env={"TERM": "xterm", "PATH": "/usr/bin:/bin"}
        )
        self.assertEqual(code, 5, err)
        self.assertIn(b"80\r\n", out)
        self.assertIn(b"xterm\r\n", out)
        self.assertIn(b"after-2\r\n", out)
        self.assertNotIn(b"42\r\n", out)  # the interrupt ended the line's programs

    async def test_sftp_subsystem(self) -> None:
        """The sftp subsystem runs sftp-server as its pod's program: a file goes up and back."""
        content = b"through the session pod\n"
        self.assertEqual(await self.sftp_round_trip(content), content)
