"""Forwarding with ``backend: kubernetes`` (connection mode): the same helper in
the pod, reached through the API server's exec streams, with the OpenSSH client."""

from __future__ import annotations

import hashlib

from twisted.internet.threads import deferToThread

from tests.integration.test_forwarding import SIZE, _Remote, fetch
from tests.integration.test_kubernetes import KubernetesGatewayCase


class KubernetesForwardingTests(_Remote, KubernetesGatewayCase):
    config_overrides = {
        "security": {"forwarding": {"forwardingMode": "enable", "reverseForwardingMode": "enable"}}
    }

    async def test_local_forward(self) -> None:
        """``ssh -L`` to a web server in the pod: 20 MB intact, through the helper."""
        digest = await self.serve()
        port = await self.local_forward()
        body = await deferToThread(fetch, f"http://127.0.0.1:{port}/blob")
        self.assertEqual(len(body), SIZE)
        self.assertEqual(hashlib.sha256(body).hexdigest(), digest)
        [helper] = [r.details for r in self.log_records if r.code == "SSH_FORWARD_HELPER"]
        self.assertEqual(helper["helper"], "forward-server")

    async def test_remote_forward(self) -> None:
        """``ssh -R 0:...``: the pod listens; a program there reaches the client's server."""
        server_port, digest = self.client_side_server()
        await self.start_master()
        code, out, err = await self.remote_forward(f"0:127.0.0.1:{server_port}")
        self.assertEqual(code, 0, err)
        out, err, code = await self.fetch_in_container(int(out.split()[0]))
        self.assertEqual((code, out.split()[0].decode()), (0, digest), err)
