"""How requests to the API server authenticate: the ``Authorization`` header.

A bearer token comes inline or from a file. A file is read again whenever it
changes (its inode, size or modification time), so a rotated service-account
token (the kubelet swaps a symlink about once an hour) is used without a
restart; if a re-read fails, the last token read stays in use and the API
server's answer says whether it still works. Basic auth (username and
password) is sent as ContainerSSH sends it, for the clusters that still
accept it.

:meth:`Credentials.authorization` is called from the control calls' pool
threads and from the reactor (when a stream opens); a lock keeps the cached
token consistent between them. It does a ``stat`` and, after a rotation, one
small read of a local file.
"""

from __future__ import annotations

import base64
import os
import threading

#: The most of a token file that is read (service-account tokens are about 1 KiB).
MAX_TOKEN_FILE = 64 * 1024


class TokenFileError(Exception):
    """The token file cannot be read, or is empty or too large."""


def read_token_file(path: str) -> str:
    """The token in ``path``, without surrounding white space.

    :raises TokenFileError: naming the file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOKEN_FILE + 1)
    except OSError as e:
        raise TokenFileError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_TOKEN_FILE:
        raise TokenFileError(f"{path} is larger than {MAX_TOKEN_FILE} bytes")
    token = data.decode("utf-8", "replace").strip()
    if not token:
        raise TokenFileError(f"{path} is empty")
    return token


class Credentials:
    """The credentials of one API server connection.

    :param token: an inline bearer token.
    :param token_file: a file holding the bearer token (read again when it changes).
    :param username: basic-auth username (used only without a token).
    :param password: basic-auth password.
    :raises TokenFileError: if ``token_file`` cannot be read now.
    """

    def __init__(
        self,
        *,
        token: str = "",
        token_file: str = "",
        username: str = "",
        password: str = "",
    ) -> None:
        self._token = token.strip()
        self._token_file = token_file
        self._basic = ""
        if username or password:
            pair = f"{username}:{password}".encode()
            self._basic = "Basic " + base64.b64encode(pair).decode("ascii")
        self._lock = threading.Lock()
        self._file_state: tuple[int, int, int] | None = None
        if token_file:
            self._file_state = _state(token_file)
            self._token = read_token_file(token_file)

    def __repr__(self) -> str:
        # Never the token or the password: this object may end up in a log line.
        kind = "token file" if self._token_file else "token" if self._token else "basic"
        return f"<Credentials {kind if (self._token or self._basic) else 'none'}>"

    @property
    def token_file(self) -> str:
        """The token file followed, or ``""``."""
        return self._token_file

    def authorization(self) -> str | None:
        """The value of the ``Authorization`` header to send, or None for none."""
        if self._token_file:
            self._reload()
        if self._token:
            return f"Bearer {self._token}"
        return self._basic or None

    def _reload(self) -> None:
        with self._lock:
            try:
                state = _state(self._token_file)
            except TokenFileError:
                return
            if state == self._file_state:
                return
            try:
                token = read_token_file(self._token_file)
            except TokenFileError:
                return  # mid-rotation or gone: keep the last token and try again next time
            self._token = token
            self._file_state = state


def _state(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise TokenFileError(f"cannot read {path}: {e.strerror or e}") from e
    return (st.st_ino, st.st_size, st.st_mtime_ns)
