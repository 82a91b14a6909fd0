"""Local port forwarding through the gateway with the real OpenSSH client.

A web server (busybox ``httpd``) runs in the user's container on its
loopback interface, where nothing outside the container can reach it. With
``security.forwarding.forwardingMode: enable``, ``ssh -L`` carries 20 MB from
it intact and ``ssh -D`` serves ``curl --socks5-hostname``; under the default
policy both are refused. Every test ends with no container left behind
(checked by the base class after the gateway stops).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.server import Site
from twisted.web.static import File

from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from tests.integration.gateway import SSH, ControlMasterMixin, GatewayTestCase, reactor
from tests.integration.processes import free_port
from tests.integration.test_session_mode import SessionModeGatewayTestCase

SIZE = 20 * 1024 * 1024
#: Starts the server in the container (it runs on after the exec returns) and
#: prints the file's digest.
SERVE = (
    "mkdir -p /tmp/www && head -c {size} /dev/urandom > /tmp/www/blob && "
    "sha256sum /tmp/www/blob && busybox httpd -p 127.0.0.1:8080 -h /tmp/www"
)


def fetch(url: str, proxy: str | None = None) -> bytes:
    """GET ``url`` with curl (through a SOCKS5 proxy resolving the name, if given)."""

    argv = ["curl", "--silent", "--show-error", "--fail", "--max-time", "60", url]
    if proxy is not None:
        argv[1:1] = ["--socks5-hostname", proxy]
    return subprocess.run(argv, check=True, capture_output=True, timeout=90).stdout


class _Forwarding(ControlMasterMixin, GatewayTestCase):
    timeout = 180

    def setUp(self) -> Any:
        if shutil.which("curl") is None:
            self.fail("curl is required (scripts/test installs it)")
        return super().setUp()

    async def serve(self) -> str:
        """Log in, start the web server in the container; the served file's sha256."""
        await self.start_master()
        out, err, code = await self.ssh(SERVE.format(size=SIZE), "-S", self.control)
        self.assertEqual(code, 0, err)
        return out.split()[0].decode()

    async def add_forward(self, *spec: str) -> None:
        assert SSH is not None
        argv = self.ssh_args("-S", self.control, "-O", "forward", *spec)
        _out, err, code = await getProcessOutputAndValue(SSH, argv, env=dict(os.environ))
        self.assertEqual(code, 0, err)

    async def local_forward(self, remote_port: int = 8080) -> int:
        """``-L`` from a free local port to ``remote_port`` on the container's loopback,
        listening once this returns; the local port."""
        port = free_port()
        await self.add_forward("-L", f"127.0.0.1:{port}:127.0.0.1:{remote_port}")
        await self.wait_listening(port)
        return port

    async def wait_listening(self, port: int) -> None:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"nothing listens on {port}")


class LocalForwardTests(_Forwarding):
    config_overrides = {"security": {"forwarding": {"forwardingMode": "enable"}}}

    async def test_local_forward_carries_20_mb(self) -> None:
        """``ssh -L``: 20 MB from a server only the container can reach, intact."""
        digest = await self.serve()
        port = await self.local_forward()
        body = await deferToThread(fetch, f"http://127.0.0.1:{port}/blob")
        self.assertEqual(len(body), SIZE)
        self.assertEqual(hashlib.sha256(body).hexdigest(), digest)
        self.assertIn("SSH_FORWARD_DIAL", self.logged_codes())
        # The guest image carries the forwarding helper, and it was used.
        [helper] = [r.details for r in self.log_records if r.code == "SSH_FORWARD_HELPER"]
        self.assertEqual(helper["helper"], "forward-server")

    async def test_dynamic_forward(self) -> None:
        """``ssh -D``: curl through the SOCKS proxy, the name resolved in the container."""
        digest = await self.serve()
        port = free_port()
        await self.add_forward("-D", f"127.0.0.1:{port}")
        await self.wait_listening(port)
        body = await deferToThread(fetch, "http://localhost:8080/blob", f"127.0.0.1:{port}")
        self.assertEqual(hashlib.sha256(body).hexdigest(), digest)

    async def test_many_connections_through_one_forward(self) -> None:
        """Twenty connections at once through one ``-L``, each complete."""
        digest = await self.serve()
        port = await self.local_forward()
        url = f"http://127.0.0.1:{port}/blob"
        bodies: list[Any] = await gatherResults([deferToThread(fetch, url) for _ in range(20)])
        for body in bodies:
            self.assertEqual(hashlib.sha256(body).hexdigest(), digest)

    async def test_nothing_listening(self) -> None:
        """A port nothing listens on in the container: the connection ends, the
        dialler's complaint is logged, the SSH connection carries on."""
        digest = await self.serve()
        port = await self.local_forward(8081)
        with self.assertRaises(subprocess.CalledProcessError):
            await deferToThread(fetch, f"http://127.0.0.1:{port}/blob")
        reports = [r.details for r in self.log_records if r.code == "SSH_FORWARD_FAILED"]
        self.assertTrue(reports)
        self.assertEqual({r["port"] for r in reports if "port" in r}, {8081})
        # The helper's reason, or what nc wrote on stderr.
        said = " ".join(r.get("report", r.get("reason", "")) for r in reports)
        self.assertIn("refused", said.lower())
        out, err, code = await self.ssh("sha256sum /tmp/www/blob", "-S", self.control)
        self.assertEqual((code, out.split()[0].decode()), (0, digest), err)


class _Remote(_Forwarding):
    """Forwards the client's side serves: a web server there, and ways to reach it."""

    def client_side_server(self) -> tuple[int, str]:
        """A web server on the client's side serving 5 MB; its port and the file's digest."""
        root = self.mktemp()
        os.makedirs(root)
        blob = os.urandom(5 * 1024 * 1024)
        with open(os.path.join(root, "blob"), "wb") as f:
            f.write(blob)
        listening = reactor.listenTCP(0, Site(File(root)), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        return listening.getHost().port, hashlib.sha256(blob).hexdigest()

    async def remote_forward(self, spec: str) -> tuple[int, bytes, bytes]:
        assert SSH is not None
        argv = self.ssh_args("-S", self.control, "-O", "forward", "-R", spec)
        out, err, code = await getProcessOutputAndValue(SSH, argv, env=dict(os.environ))
        return code, out, err

    async def fetch_in_container(self, port: int) -> tuple[bytes, bytes, int]:
        return await self.ssh(
            f"wget -q -O - http://127.0.0.1:{port}/blob | sha256sum", "-S", self.control
        )


class RemoteForwardTests(_Remote):
    """``ssh -R``: the container listens; a web server on the client's side answers."""

    config_overrides = {"security": {"forwarding": {"reverseForwardingMode": "enable"}}}

    async def test_port_zero(self) -> None:
        """``-R 0:...``: the container chooses the port, the client learns it, and a
        program in the container reaches the client's server through it, intact."""
        server_port, digest = self.client_side_server()
        await self.start_master()
        code, out, err = await self.remote_forward(f"0:127.0.0.1:{server_port}")
        self.assertEqual(code, 0, err)
        port = int(out.split()[0])
        self.assertGreater(port, 0)
        for _ in range(3):
            out, err, code = await self.fetch_in_container(port)
            self.assertEqual((code, out.split()[0].decode()), (0, digest), err)
        codes = self.logged_codes()
        self.assertIn("SSH_FORWARD_LISTEN", codes)
        self.assertEqual(codes.count("SSH_FORWARD_ACCEPT"), 3)

    async def test_fixed_port_then_cancel(self) -> None:
        """A port of the client's choosing; after ``-O cancel`` nothing listens there."""
        server_port, digest = self.client_side_server()
        await self.start_master()
        port = free_port()
        spec = f"{port}:127.0.0.1:{server_port}"
        code, _out, err = await self.remote_forward(spec)
        self.assertEqual(code, 0, err)
        out, err, code = await self.fetch_in_container(port)
        self.assertEqual((code, out.split()[0].decode()), (0, digest), err)
        assert SSH is not None
        argv = self.ssh_args("-S", self.control, "-O", "cancel", "-R", spec)
        _out, err, code = await getProcessOutputAndValue(SSH, argv, env=dict(os.environ))
        self.assertEqual(code, 0, err)
        for _ in range(50):  # the helper stops listening as the cancel's answer goes out
            out, err, code = await self.ssh(
                f"wget -q -T 5 -O /dev/null http://127.0.0.1:{port}/blob", "-S", self.control
            )
            if code != 0:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertNotEqual(code, 0)

    async def test_port_taken(self) -> None:
        """A port something in the container listens on already: the request fails,
        with the helper's reason logged."""
        await self.start_master()
        _out, err, code = await self.ssh(
            "busybox httpd -p 127.0.0.1:8090 -h /tmp", "-S", self.control
        )
        self.assertEqual(code, 0, err)
        code, _out, err = await self.remote_forward("127.0.0.1:8090:127.0.0.1:9")
        self.assertNotEqual(code, 0)
        failed = [r.details for r in self.log_records if r.code == "SSH_FORWARD_FAILED"]
        self.assertTrue(failed)
        self.assertIn("in use", " ".join(str(r.get("reason")) for r in failed).lower())

    async def test_client_killed(self) -> None:
        """The client vanishes with a listener open: the container, and with it the
        helper and its listener, is removed without waiting for the gateway's stop."""
        server_port, _digest = self.client_side_server()
        await self.start_master()
        code, _out, err = await self.remote_forward(f"0:127.0.0.1:{server_port}")
        self.assertEqual(code, 0, err)
        assert SSH is not None
        _out, err, _code = await getProcessOutputAndValue(
            SSH, self.ssh_args("-S", self.control, "-O", "check"), env=dict(os.environ)
        )
        pid = int(err.split(b"pid=")[1].split(b")")[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(300):
            left = await deferToThread(
                self.docker.containers,
                all=True,
                filters={"label": f"{LABEL_INSTANCE}={self.instance_id}"},
            )
            if not left:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(left, [])


class SocketForwardTests(_Remote):
    """Unix sockets both ways: the container listens on a socket for the client's
    web server (``-R /path:...``), and ``-L port:/path`` reaches that socket."""

    config_overrides = {
        "security": {"forwarding": {"socketForwardingMode": "enable", "socketListenMode": "enable"}}
    }

    async def test_socket_both_ways(self) -> None:
        server_port, digest = self.client_side_server()
        await self.start_master()
        code, _out, err = await self.remote_forward(f"/tmp/app.sock:127.0.0.1:{server_port}")
        self.assertEqual(code, 0, err)
        out, err, code = await self.ssh("test -S /tmp/app.sock && echo socket", "-S", self.control)
        self.assertEqual(out.strip(), b"socket", err)
        port = free_port()
        await self.add_forward("-L", f"127.0.0.1:{port}:/tmp/app.sock")
        await self.wait_listening(port)
        body = await deferToThread(fetch, f"http://127.0.0.1:{port}/blob")
        self.assertEqual(hashlib.sha256(body).hexdigest(), digest)
        codes = self.logged_codes()
        self.assertIn("SSH_FORWARD_LISTEN", codes)
        self.assertIn("SSH_FORWARD_ACCEPT", codes)


class X11Tests(GatewayTestCase):
    """``x11-req`` with paramiko: a connection to ``$DISPLAY`` in the container
    arrives at the client as an ``x11`` channel."""

    config_overrides = {"security": {"forwarding": {"x11ForwardingMode": "enable"}}}
    timeout = 120

    async def test_connection_to_display_reaches_client(self) -> None:
        script = os.path.join(os.path.dirname(__file__), "paramiko_x11.py")
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [script, str(self.port), self.key_file.path], env=dict(os.environ)
        )
        self.assertEqual(code, 0, err)
        result = json.loads(out)
        self.assertRegex(result["display"], r"^localhost:\d+\.0$")
        self.assertGreaterEqual(int(result["display"].split(":")[1].split(".")[0]), 10)
        self.assertEqual(result["carried"], "hello-x11\n")
        self.assertEqual(result["exit_status"], 0)


class _WithAgent(GatewayTestCase):
    """An ssh-agent on the client's side."""

    async def agent(self) -> dict[str, str]:
        """An ssh-agent holding the test's key; the environment that names it."""
        directory = tempfile.mkdtemp(prefix="agent-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        sock = os.path.join(directory, "agent.sock")
        process = subprocess.Popen(
            ["ssh-agent", "-D", "-a", sock],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait, 10)
        self.addCleanup(process.kill)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        for _ in range(100):
            if os.path.exists(sock):
                break
            await deferLater(reactor, 0.05, lambda: None)
        _out, err, code = await getProcessOutputAndValue("ssh-add", [self.key_file.path], env=env)
        self.assertEqual(code, 0, err)
        return env


class AgentForwardTests(_WithAgent):
    """``ssh -A``: a program in the container lists the keys of an ssh-agent on the
    client's side."""

    config_overrides = {"security": {"forwarding": {"agentForwardingMode": "enable"}}}
    timeout = 120

    async def test_agent_answers_from_the_container(self) -> None:
        env = await self.agent()
        listed, _err, code = await getProcessOutputAndValue("ssh-add", ["-l"], env=env)
        self.assertEqual(code, 0)
        assert SSH is not None
        argv = [*self.ssh_args("-A"), 'echo "$SSH_AUTH_SOCK"; ssh-add -l']
        out, err, code = await getProcessOutputAndValue(SSH, argv, env=env)
        self.assertEqual(code, 0, err)
        sock, keys = out.decode().split("\n", 1)
        self.assertRegex(sock, r"^/tmp/ssh-agent-[0-9a-f]{16}\.sock$")
        # The same key, seen from inside the container.
        self.assertEqual(keys.split()[1], listed.decode().split()[1])
        self.assertIn("SSH_FORWARD_ACCEPT", self.logged_codes())


class SessionModeTests(_Forwarding, SessionModeGatewayTestCase):
    """Session mode has no container that lives as long as the connection: refused."""

    config_overrides = {"security": {"forwarding": {"forwardingMode": "enable"}}}

    async def test_refused(self) -> None:
        await self.start_master()
        port = await self.local_forward()
        with self.assertRaises(subprocess.CalledProcessError):
            await deferToThread(fetch, f"http://127.0.0.1:{port}/")
        self.assertIn("SSH_FORWARD_FAILED", self.logged_codes())
        self.assertNotIn("SSH_FORWARD_DIAL", self.logged_codes())


class RefusedByDefaultTests(_Forwarding, _WithAgent):
    async def test_local_forward_refused(self) -> None:
        """The default policy: the channel is refused and the refusal logged."""
        await self.serve()
        port = await self.local_forward()
        with self.assertRaises(subprocess.CalledProcessError):
            await deferToThread(fetch, f"http://127.0.0.1:{port}/blob")
        self.assertIn("SECURITY_FORWARDING_REJECTED", self.logged_codes())
        self.assertNotIn("SSH_FORWARD_DIAL", self.logged_codes())

    async def test_agent_not_forwarded(self) -> None:
        """``ssh -A`` under the default policy: no socket for the program."""
        env = await self.agent()
        assert SSH is not None
        argv = [*self.ssh_args("-A"), 'echo "[$SSH_AUTH_SOCK]"']
        out, err, code = await getProcessOutputAndValue(SSH, argv, env=env)
        self.assertEqual((code, out.strip()), (0, b"[]"), err)
        self.assertIn("SECURITY_AGENT_FORWARDING_REJECTED", self.logged_codes())

    async def test_remote_forward_refused(self) -> None:
        await self.start_master()
        assert SSH is not None
        argv = self.ssh_args("-S", self.control, "-O", "forward", "-R", "0:127.0.0.1:9")
        _out, _err, code = await getProcessOutputAndValue(SSH, argv, env=dict(os.environ))
        self.assertNotEqual(code, 0)
        self.assertIn("SECURITY_REVERSE_FORWARDING_REJECTED", self.logged_codes())
