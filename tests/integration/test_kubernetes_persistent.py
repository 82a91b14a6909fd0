"""``kubernetes.pod.mode: persistent`` end to end: real gateway, OpenSSH client, test API server.

Every connection runs in the one pod the configuration names; the gateway
creates it when missing (``createMissingPods``) and never deletes it, not at
disconnect and not when it stops. The test deletes it itself.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from tests.integration.test_kubernetes import KubernetesGatewayCase
from tests.testing.kubeapi.support import unique

#: The first connection writes this file; the second, open at the same time, reads it.
SHARED_FILE = "/tmp/written-by-the-first"


class KubernetesPersistentGatewayTests(KubernetesGatewayCase):
    """A gateway in persistent mode, creating its missing pod."""

    async def setUp(self) -> None:
        self.pod_name = unique("persistent-e2e")
        await super().setUp()
        # Added last, so it runs first: before the gateway and the API server stop.
        self.addCleanup(lambda: Deferred.fromCoroutine(self.delete_pod()))

    def kubernetes_section(self) -> dict[str, Any]:
        section = super().kubernetes_section()
        section["pod"].update(
            mode="persistent",
            metadata={"namespace": "default", "name": self.pod_name},
            createMissingPods=True,
        )
        return section

    async def pod(self) -> dict[str, Any] | None:
        """The persistent pod, None if it is gone or being deleted."""
        found = await self.with_pods(lambda pods: pods.get_pod("default", self.pod_name))
        if found is None or "deletionTimestamp" in found["metadata"]:
            return None
        return dict(found)

    async def delete_pod(self) -> None:
        await self.with_pods(lambda pods: pods.delete_pod("default", self.pod_name, 0))

    async def test_connections_share_the_pod_which_outlives_them(self) -> None:
        """Two connections at once share the pod; it stays after both and after the gateway stops.

        The first writes a file and stays connected until the second, in
        the same pod, has read it.
        """
        first = Deferred.fromCoroutine(
            self.ssh(
                f"echo from-first > {SHARED_FILE}; "
                "i=0; while [ ! -f /tmp/read-by-second ] && [ $i -lt 150 ]; "
                "do sleep 0.2; i=$((i+1)); done; cat /tmp/read-by-second"
            )
        )
        second = Deferred.fromCoroutine(
            self.ssh(
                f"i=0; while [ ! -f {SHARED_FILE} ] && [ $i -lt 150 ]; "
                "do sleep 0.2; i=$((i+1)); done; "
                f"cat {SHARED_FILE} && echo seen > /tmp/read-by-second"
            )
        )
        (out1, err1, code1), (out2, err2, code2) = await gatherResults([first, second])
        self.assertEqual((code1, code2), (0, 0), (err1, err2))
        self.assertEqual(out2, b"from-first\n")
        self.assertEqual(out1, b"seen\n")

        pod = await self.pod()
        self.assertIsNotNone(pod, "the pod was deleted at disconnect")
        assert pod is not None
        self.assertNotIn("conch_container_instance", pod["metadata"]["labels"])
        await self.root.stopService()
        self.assertIsNotNone(await self.pod(), "the pod was deleted when the gateway stopped")

        codes = self.logged_codes()
        for expected in (
            "KUBERNETES_POD_LOOKUP",
            "KUBERNETES_POD_CREATE",
            "KUBERNETES_EXEC",
            "KUBERNETES_POD_KEPT",
        ):
            self.assertIn(expected, codes)
        self.assertNotIn("KUBERNETES_POD_REMOVE", codes)
