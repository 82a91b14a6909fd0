"""This gateway's instance id: the value of its containers' ``conch_container_instance`` label.

The id must be *unique among the running gateways* of one Docker engine,
because the start-up clean-up removes every container that carries it; and it
must be *the same as that of the run a restarted gateway succeeds*, so that
the clean-up finds what a killed run left behind. Host name, configuration
path and listen address do not give the first: two gateway containers with a
fixed host name and the same configuration file share all three.

So the id is random, kept in a *slot file* in a state directory (by default
the configuration file's directory) and owned through an exclusive ``flock``
held for the life of the process. The kernel drops that lock however the
process ends, ``SIGKILL`` included, so a slot whose lock can be taken belongs
to no live process: its id, and every container labelled with it, are a dead
run's, and the new run takes them over. Gateways sharing a state directory
take different slots (``config.yaml.instance-0``, ``config.yaml.instance-1``,
...); gateways with separate directories make separate random ids.

``flock`` rather than ``fcntl``'s POSIX record locks: a ``flock`` belongs to
the open file description, so two claims in one process exclude each other
as two processes' do, and a child made by ``fork`` (``twistd`` daemonising)
shares its parent's lock, which then outlives the parent's exit.

When no slot can be kept (a read-only directory, a file system without
locks, every slot taken) the gateway runs with a random id of its own and
says so: nothing will then remove what a killed run of it leaves behind.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
from collections.abc import Callable

from conch_container import messages
from conch_container.log import CodeLogger

#: Slots tried in one directory before giving up; each running gateway holds one.
MAX_SLOTS = 64

_INSTANCE_ID = re.compile(r"[0-9a-f]{16}")


def random_instance_id() -> str:
    """A new instance id: 16 random hex digits."""
    return secrets.token_hex(8)


class InstanceStateError(Exception):
    """No slot could be claimed in the state directory; the message says why."""


class InstanceClaim:
    """An instance id this process owns.

    :ivar instance_id: 16 hex digits, the ``conch_container_instance`` label's value.
    :ivar path: the slot file that keeps the id, or None when it is kept nowhere.
    """

    def __init__(self, instance_id: str, path: str | None = None, fd: int | None = None) -> None:
        self.instance_id = instance_id
        self.path = path
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether this process still holds the slot's lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give the slot up, so the next claim takes the id over; idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def claim_slot(
    directory: str,
    name: str,
    *,
    max_slots: int = MAX_SLOTS,
    new_id: Callable[[], str] = random_instance_id,
) -> InstanceClaim:
    """Claim the first slot of ``name`` in ``directory`` that no live process holds.

    The slot file's id is kept if it is one; otherwise ``new_id()`` is written
    there. The file is never replaced or removed: a new file at the same path
    would be a second lock, and two processes could then hold the same slot.

    :raises InstanceStateError: when the directory cannot keep an id.
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise InstanceStateError(f"cannot create {directory}: {e.strerror}") from None
    for slot in range(max_slots):
        path = os.path.join(directory, f"{name}.instance-{slot}")
        fd = _open_locked(path)
        if fd is None:
            continue
        try:
            return InstanceClaim(_kept_id(fd, new_id), path, fd)
        except OSError as e:
            os.close(fd)
            raise InstanceStateError(f"cannot write {path}: {e.strerror}") from None
    raise InstanceStateError(f"all {max_slots} slots are held by running gateways")


def _open_locked(path: str) -> int | None:
    """The slot file, opened and locked; None when a live process holds its lock.

    A symbolic link is refused rather than followed: whoever can write the
    directory must not be able to have another file overwritten.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise InstanceStateError(f"cannot open {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InstanceStateError(f"{path} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as e:
        os.close(fd)
        raise InstanceStateError(f"cannot lock {path}: {e.strerror}") from None
    except InstanceStateError:
        os.close(fd)
        raise
    return fd


def _kept_id(fd: int, new_id: Callable[[], str]) -> str:
    """The id the locked slot file keeps, or a new one written there.

    Written in place (never by renaming a new file over it: see
    :func:`claim_slot`); a write cut short by a crash leaves text that is not
    an id, and only costs the next run the clean-up of that one run.
    """
    kept = os.pread(fd, 64, 0).decode("ascii", errors="replace").strip()
    if _INSTANCE_ID.fullmatch(kept):
        return kept
    instance_id = new_id()
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{instance_id}\n".encode("ascii"), 0)
    os.fsync(fd)
    return instance_id


def claim_instance_id(config_path: str, state_dir: str | None, log: CodeLogger) -> InstanceClaim:
    """This run's instance id, claimed in ``state_dir`` (default: the configuration's directory).

    Slot files are named after the configuration file. Logs
    ``CORE_INSTANCE_ID`` with the id and its file, or, when the directory
    cannot keep it, ``CORE_INSTANCE_ID_NOT_KEPT`` with a random id for this
    run only and what that means for the operator.
    """
    directory = os.path.abspath(state_dir or os.path.dirname(os.path.abspath(config_path)))
    try:
        claim = claim_slot(directory, os.path.basename(config_path))
    except InstanceStateError as e:
        claim = InstanceClaim(random_instance_id())
        log.event(
            messages.CORE_INSTANCE_ID_NOT_KEPT,
            "Cannot keep this gateway's instance id in {directory} ({reason}); using "
            "{instanceId} for this run only. If this run is killed, its next start will not "
            "remove the containers it leaves behind: give the gateway a writable state "
            "directory (--state-dir), or remove them by hand (docker ps --all --filter "
            "label=conch_container_instance={instanceId})",
            directory=directory,
            reason=str(e),
            instanceId=claim.instance_id,
        )
        return claim
    log.event(
        messages.CORE_INSTANCE_ID,
        "This gateway's instance id is {instanceId}, kept in {file} while it runs",
        instanceId=claim.instance_id,
        file=claim.path,
    )
    return claim
