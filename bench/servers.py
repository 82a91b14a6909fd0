"""The three SSH servers of the benchmark, each a context manager yielding a client.

- the gateway under test (``twistd containerssh``) with a static user ``bench``;
- OpenSSH's sshd on its own port, config and host key, for the current user;
- a bare Twisted Conch server (``bench/bare_conch.py``).

Each one is stopped on exit from its ``with`` block, also on errors and Ctrl-C.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.procs import LOOPBACK, BenchError, Server, free_port, run_quietly
from bench.sshclient import CIPHER, MAC, Client, KeyPair, generate_key

SSHD = "/usr/sbin/sshd"
GATEWAY_USER = "bench"
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


@dataclass(frozen=True)
class Workspace:
    """What every server needs: a private temp dir, the client key, the known_hosts file."""

    root: Path
    client_key: KeyPair
    known_hosts: Path

    def client(self, label: str, port: int, user: str, server: Server | None = None) -> Client:
        """An OpenSSH client for a server on ``port`` (run as ``server``, if the benchmark did)."""
        pid = server.process.pid if server is not None else None
        return Client(label, port, user, self.client_key, self.known_hosts, pid)


def _yaml(value: object, indent: int = 0) -> str:
    """Block-style YAML for nested dicts; JSON-quoted scalars and flow lists are valid YAML."""
    if not isinstance(value, dict):
        return json.dumps(value)
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:\n{_yaml(item, indent + 1)}")
        else:
            lines.append(f"{pad}{key}: {_yaml(item)}")
    return "\n".join(lines)


def gateway_config(
    work: Workspace,
    image: str,
    port: int,
    extra: dict[str, object] | None = None,
    name: str = "gateway",
    docker_extra: dict[str, object] | None = None,
) -> Path:
    """Write the gateway's ContainerSSH config and users file; return the config path.

    :param extra: top-level sections added to the configuration.
    :param name: names its files (several gateways may share a workspace).
    :param docker_extra: keys added to the ``docker`` section (``pool``).
    """
    try:
        import bcrypt  # the project's own dependency: only in its virtualenv
    except ImportError:
        raise BenchError("bcrypt is not installed: run through ./bench/run") from None

    host_key = generate_key(work.root / f"{name}_host_ed25519", f"{name} host key")
    password = secrets.token_urlsafe(24).encode()
    users = {
        "users": {
            GATEWAY_USER: {
                "passwordHash": bcrypt.hashpw(password, bcrypt.gensalt(rounds=10)).decode(),
                "authorizedKeys": [work.client_key.public_line],
            }
        }
    }
    users_file = work.root / f"{name}-users.yaml"
    users_file.write_text(_yaml(users) + "\n")
    config = {
        "ssh": {"listen": f"{LOOPBACK}:{port}", "hostkeys": [host_key.private_pem()]},
        "auth": {"publicKey": {"method": "static", "static": {"usersFile": str(users_file)}}},
        "log": {"level": "warning"},
        "docker": {
            "execution": {
                "container": {"image": image},
                "imagePullPolicy": "Never",
                "disableAgent": True,
                "idleCommand": IDLE_COMMAND,
                "shellCommand": ["/bin/sh"],
            },
            **(docker_extra or {}),
        },
        **(extra or {}),
    }
    path = work.root / f"{name}.yaml"
    path.write_text(_yaml(config) + "\n")
    return path


def twistd_argv(python: str, config: Path) -> list[str]:
    """The command line of ``twistd containerssh -c config`` in the foreground."""
    # ``python -m twisted.scripts.twistd`` would exit 0 doing nothing (the module
    # has no __main__ block); this is what the ``twistd`` script itself runs.
    # With ``-c`` the working directory (the project root) comes first on sys.path.
    return [python, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "containerssh", "-c", str(config)]  # fmt: skip


@contextmanager
def running_gateway(
    label: str, python: str, config: Path, port: int, log: Path, project_root: Path
) -> Iterator[Server]:
    """A gateway run by twistd from the project root, until the ``with`` block ends."""
    server = Server.start(label, twistd_argv(python, config), log, cwd=project_root)
    try:
        server.wait_for_port(port, timeout=30.0)
        yield server
    finally:
        # The gateway removes its containers while shutting down: give it time.
        server.stop(timeout=30.0)


@contextmanager
def gateway(work: Workspace, python: str, project_root: Path, image: str) -> Iterator[Client]:
    """The gateway under test, run by twistd from the project root."""
    port = free_port()
    config = gateway_config(work, image, port)
    with running_gateway("gateway (twistd containerssh)", python, config, port,
                         work.root / "gateway.log", project_root) as server:  # fmt: skip
        yield work.client("gateway", port, GATEWAY_USER, server)


@contextmanager
def pool_gateway(
    work: Workspace, python: str, project_root: Path, image: str, size: int
) -> Iterator[Client]:
    """A second gateway keeping ``size`` containers ready (``docker.pool``), with its
    metrics on a free port so the benchmark can wait for the pool to be full again
    (:func:`wait_pool_full`) before it measures anything else."""
    port, metrics_port = free_port(), free_port()
    config = gateway_config(
        work,
        image,
        port,
        extra={"metrics": {"enable": True, "listen": f"{LOOPBACK}:{metrics_port}"}},
        name="pool-gateway",
        docker_extra={"pool": {"size": size}},
    )
    with running_gateway("gateway with a warm pool", python, config, port,
                         work.root / "pool-gateway.log", project_root) as server:  # fmt: skip
        client = work.client("pool", port, GATEWAY_USER, server)
        POOL_METRICS[client.label] = (f"http://{LOOPBACK}:{metrics_port}/metrics", size)
        wait_pool_full(client.label)
        yield client


#: Where each pool gateway's metrics are, and its pool size, by client label.
POOL_METRICS: dict[str, tuple[str, int]] = {}


def wait_pool_full(label: str, timeout: float = 60.0) -> None:
    """Block until the pool gateway ``label`` has its whole pool ready and nothing starting."""
    url, size = POOL_METRICS[label]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            text = ""
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("conch_container_backend_pool_containers{"):
                state = line.split('state="', 1)[1].split('"', 1)[0]
                counts[state] = float(line.rsplit(" ", 1)[1])
        if counts.get("ready") == size and counts.get("starting") == 0:
            return
        time.sleep(0.05)
    raise BenchError(f"the warm pool did not refill to {size} within {timeout:g} s")


def _sshd_config(work: Workspace, port: int) -> Path:
    host_key = generate_key(work.root / "sshd_host_ed25519", "sshd host key")
    authorized = work.root / "authorized_keys"
    authorized.write_text(work.client_key.public_line + "\n")
    authorized.chmod(0o600)
    lines = [
        f"ListenAddress {LOOPBACK}:{port}",
        f"HostKey {host_key.private_path}",
        f"AuthorizedKeysFile {authorized}",
        "PidFile none",
        "UsePAM no",
        "PermitRootLogin yes",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PrintMotd no",
        "PrintLastLog no",
        "LogLevel ERROR",
    ]
    path = work.root / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _privsep_dir() -> None:
    # Debian's sshd refuses to start without it; its service unit normally creates it.
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)


@contextmanager
def sshd(work: Workspace) -> Iterator[Client]:
    """OpenSSH's sshd on a free loopback port, with key auth for the current user."""
    if not os.access(SSHD, os.X_OK):
        raise BenchError(f"{SSHD} not found: apt-get install openssh-server")
    port = free_port()
    config = _sshd_config(work, port)
    _privsep_dir()
    run_quietly([SSHD, "-t", "-f", str(config)])
    server = Server.start("OpenSSH sshd", [SSHD, "-D", "-e", "-f", str(config)],
                          work.root / "sshd.log")  # fmt: skip
    try:
        server.wait_for_port(port, timeout=15.0)
        yield work.client("sshd", port, getpass.getuser(), server)
    finally:
        server.stop()


@contextmanager
def bare_conch(work: Workspace, python: str) -> Iterator[Client]:
    """The bare Twisted Conch server of ``bench/bare_conch.py``."""
    port = free_port()
    host_key = generate_key(work.root / "bare_host_ed25519", "bare conch host key")
    public = work.root / "bare_authorized.pub"
    public.write_text(work.client_key.public_line + "\n")
    script = Path(__file__).with_name("bare_conch.py")
    argv = [python, str(script), "--port", str(port),
            "--host-key", str(host_key.private_path), "--authorized-key", str(public),
            "--cipher", CIPHER, "--mac", MAC]  # fmt: skip
    server = Server.start("bare Conch server", argv, work.root / "bare_conch.log")
    try:
        server.wait_for_port(port, timeout=15.0)
        yield work.client("bare Conch", port, GATEWAY_USER, server)
    finally:
        server.stop()
