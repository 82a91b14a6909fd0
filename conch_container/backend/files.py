"""Private files for SDKs that read their TLS material from files only."""

from __future__ import annotations

import os


def write_private(directory: str, name: str, content: str) -> str:
    """Write ``content`` into a new file ``name`` in ``directory``, readable by its owner only.

    :return: the file's path.
    :raises FileExistsError: if the file exists (it is never overwritten).
    """
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    return path
