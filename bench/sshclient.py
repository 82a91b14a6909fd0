"""The real OpenSSH client, its key, and the command lines it runs with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.procs import LOOPBACK, run_quietly

#: Forced for every throughput run so that all servers do the same crypto work:
#: the AEAD cipher OpenSSH and the gateway both prefer among the AES ones (its
#: MAC is implicit; the MAC named is offered only because the list must not be empty).
CIPHER = "aes128-gcm@openssh.com"
MAC = "hmac-sha2-256-etm@openssh.com"


@dataclass(frozen=True)
class KeyPair:
    """An unencrypted key written by ssh-keygen: the private key file and public line."""

    private_path: Path
    public_line: str

    def private_pem(self) -> str:
        """The private key text (OpenSSH PEM format)."""
        return self.private_path.read_text()


def generate_key(path: Path, comment: str) -> KeyPair:
    """Generate an ed25519 key pair at ``path`` (and ``path.pub``) with ssh-keygen."""
    run_quietly(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    public = path.with_name(path.name + ".pub").read_text().strip()
    return KeyPair(path, public)


@dataclass(frozen=True)
class Client:
    """How to reach one server with the OpenSSH client."""

    label: str
    port: int
    user: str
    key: KeyPair
    known_hosts: Path
    #: The server's process, when the benchmark started it (for its CPU time).
    server_pid: int | None = None

    def argv(self, command: str, force_cipher: bool = False) -> list[str]:
        """The ssh command line that runs ``command`` on this server."""
        argv = [
            "ssh",
            "-F", "/dev/null",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=no",
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10",
            "-i", str(self.key.private_path),
            "-p", str(self.port),
        ]  # fmt: skip
        if force_cipher:
            argv += ["-c", CIPHER, "-m", MAC]
        return [*argv, f"{self.user}@{LOOPBACK}", command]
