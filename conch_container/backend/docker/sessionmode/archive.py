"""Authentication's ``files`` as a tar archive for the engine's ``PUT /containers/{id}/archive``.

The engine extracts an archive into a container whether or not it runs, so
files can be placed before the program starts, without any guest agent. Each
file becomes a regular file with mode ``0600``, as the agent's ``write-file``
creates it; directories missing on the way are created by the engine (owned
by root, mode ``0755``).

Pure functions, no I/O.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable, Mapping

import attrs

#: The mode of every file placed in a container.
FILE_MODE = 0o600


@attrs.frozen
class FileOwner:
    """Who owns the files placed in a container."""

    uid: int = 0
    gid: int = 0


ROOT = FileOwner()


def file_owner(user: str | None) -> FileOwner:
    """The owner for files in a container whose ``Config.User`` is ``user``.

    ``UID`` or ``UID:GID`` with numbers gives that owner (group 0 when none is
    given). A user or group *name* cannot be resolved without reading the
    image's ``/etc/passwd``, so the files then belong to root, as does every
    file when no user is configured.
    """
    if not user:
        return ROOT
    uid_text, _, gid_text = user.partition(":")
    if not uid_text.isdigit() or (gid_text and not gid_text.isdigit()):
        return ROOT
    return FileOwner(int(uid_text), int(gid_text) if gid_text else 0)


def container_path(path: str, working_dir: str | None = None) -> str | None:
    """The absolute, normalised path of a file in the container, or ``None`` if it names none.

    A relative path is taken relative to the container's working directory
    (``/`` when none is configured), as a program started there would.
    """
    if not path or "\0" in path:
        return None
    base = working_dir if working_dir and working_dir.startswith("/") else "/"
    full = posixpath.normpath(posixpath.join(base, path))
    # normpath keeps a leading "//" (POSIX allows it a meaning); no file is named "/".
    full = "/" + full.lstrip("/")
    if full == "/" or path.endswith("/"):
        return None
    return full


def files_archive(files: Iterable[tuple[str, bytes]], owner: FileOwner, mtime: float) -> bytes:
    """A tar archive to extract at ``/`` that holds ``files`` (absolute paths to contents).

    :param files: ``(path, content)`` pairs; paths as :func:`container_path` returns them.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, content in files:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = FILE_MODE
            info.uid, info.gid = owner.uid, owner.gid
            info.mtime = int(mtime)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def resolve_files(
    files: Mapping[str, object], working_dir: str | None
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Split authentication's ``files`` into placeable ``(path, content)`` pairs and bad paths.

    Values are :class:`~conch_container.metadata.FileValue` (``.value``) or bytes.
    """
    placeable: list[tuple[str, bytes]] = []
    refused: list[str] = []
    for path, value in files.items():
        content = getattr(value, "value", value)
        full = container_path(path, working_dir)
        if full is None or not isinstance(content, bytes | bytearray):
            refused.append(path)
            continue
        placeable.append((full, bytes(content)))
    return placeable, refused
