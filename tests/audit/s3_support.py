"""A real S3-compatible server for the audit storage tests: moto, in server mode, on loopback.

:func:`s3_endpoint` is the server every test of a test process shares: the
one whose URL is in ``CONCH_CONTAINER_S3_ENDPOINT`` (``scripts/test`` starts
one for the whole run), or else one ``moto_server`` this process starts on a
free loopback port the first time it is asked for, and stops when it exits.
Each test gets a bucket of its own, so tests never see each other's objects.

:func:`auth_server` is a second server, of this process alone, that checks
credentials and IAM policies. moto switches that on for a whole server (its
``/moto-api/reset-auth``), which would break every other test on a shared
one; so this one is separate. It knows three users: ``admin`` (everything),
``noabort`` (everything but ``s3:AbortMultipartUpload``) and ``nolist``
(everything but ``s3:ListBucketMultipartUploads``).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import attrs
import botocore.session
from botocore.config import Config

ENDPOINT_VARIABLE = "CONCH_CONTAINER_S3_ENDPOINT"
#: Credentials moto takes as long as it does not check them.
ANY_KEY = "test-key"
ANY_SECRET = "test-secret"


class MotoServer:
    """One ``moto_server`` process on a free loopback port."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, attempts: int = 3) -> str:
        """Start the server and wait until it answers; its URL."""
        for _ in range(attempts):
            port = free_port()
            with open(os.path.abspath(f"moto-{port}.log"), "wb") as log:
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "from moto.server import main; main()",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.endpoint = f"http://127.0.0.1:{port}"
            if wait_answers(self.endpoint, self._process):
                atexit.register(self.stop)
                return self.endpoint
            self.stop()  # most likely someone took the port in between
        raise RuntimeError("moto_server did not start; see moto-*.log in the test directory")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_answers(endpoint: str, process: subprocess.Popen[bytes], seconds: float = 60) -> bool:
    """Whether the server at ``endpoint`` answered within ``seconds`` (blocking)."""
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2) as answer:
                answer.read()
            return True
        except OSError:
            time.sleep(0.1)
    return False


_shared: MotoServer | None = None


def s3_endpoint() -> str:
    """The URL of the S3-compatible server this process's tests share (blocking)."""
    global _shared
    given = os.environ.get(ENDPOINT_VARIABLE)
    if given:
        return given.rstrip("/")
    if _shared is None:
        server = MotoServer()
        server.start()
        _shared = server
    return _shared.endpoint


_clients: dict[tuple[str, str, str], Any] = {}


def client(endpoint: str, key: str = ANY_KEY, secret: str = ANY_SECRET) -> Any:
    """A botocore S3 client for the tests' own checks (blocking calls; cached)."""
    found = _clients.get((endpoint, key, secret))
    if found is None:
        config = Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 2},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        found = _client("s3", endpoint, key, secret, config)
        _clients[(endpoint, key, secret)] = found
    return found


def _client(service: str, endpoint: str, key: str, secret: str, config: Any = None) -> Any:
    return botocore.session.Session().create_client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


def new_bucket(s3: Any) -> str:
    """Create a bucket with a fresh name; its name (blocking)."""
    name = "audit-" + uuid.uuid4().hex
    s3.create_bucket(Bucket=name)
    return name


@attrs.frozen
class Credentials:
    key: str
    secret: str = attrs.field(repr=False)


@attrs.frozen
class AuthServer:
    """The credential-checking server and its users."""

    endpoint: str
    users: dict[str, Credentials]
    iam: Any

    def new_user(self) -> Credentials:
        """A user of its own for one test, allowed everything (blocking)."""
        return _add_user(self.iam, "user-" + uuid.uuid4().hex[:16], ())

    def revoke(self, user: Credentials) -> None:
        """Delete ``user``'s access key: S3 refuses it from now on (blocking)."""
        name = self.iam.get_access_key_last_used(AccessKeyId=user.key)["UserName"]
        self.iam.delete_access_key(UserName=name, AccessKeyId=user.key)


_ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
#: Each user: the actions its policy denies.
_USERS: dict[str, tuple[str, ...]] = {
    "admin": (),
    "noabort": ("s3:AbortMultipartUpload",),
    "nolist": ("s3:ListBucketMultipartUploads",),
}
_auth: AuthServer | None = None


def auth_server() -> AuthServer:
    """This process's credential-checking server (blocking; started once)."""
    global _auth
    if _auth is not None:
        return _auth
    server = MotoServer()
    endpoint = server.start()
    iam = _client("iam", endpoint, ANY_KEY, ANY_SECRET)
    users = {name: _add_user(iam, name, denied) for name, denied in _USERS.items()}
    # From now on every request must be signed by one of those users.
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
    admin = users["admin"]
    _auth = AuthServer(endpoint, users, _client("iam", endpoint, admin.key, admin.secret))
    return _auth


def _add_user(iam: Any, name: str, denied: tuple[str, ...]) -> Credentials:
    statements: list[dict[str, Any]] = [_ALLOW_ALL]
    if denied:
        statements.append({"Effect": "Deny", "Action": list(denied), "Resource": "*"})
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="audit-test",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])
