"""Generating a host key when the configuration has none, and saving it in the file.

ContainerSSH generates an RSA 4096 key and rewrites the whole file; here an
Ed25519 key is generated (fast, small, what OpenSSH prefers) and added to the
file with as little change as possible: in YAML the ``hostkeys:`` list is
inserted as text, so comments and layout survive; JSON is re-serialised with
its indentation. The file is replaced atomically (temporary file in the same
directory, ``fsync``, ``os.replace``) and keeps its owner, but not a mode that
lets others read it: once the file holds a private key it is written
accessible to its owner only (0600), as ssh-keygen writes a private key, and
``CORE_CONFIG_FILE_MODE_RESTRICTED`` is logged when that takes access away.
Refusing to write instead would leave the gateway a new host key at every
restart, which clients would report as a possible attack.

Typical use by the program's startup code::

    if not config.ssh.hostkeys:
        log.event(messages.CORE_NO_HOST_KEYS, "...")
        try:
            key = generate_and_store_host_key(path, log=log)
        except HostKeyGenerationError:
            ...  # log CORE_HOST_KEY_GENERATION_FAILED and stop
        except HostKeyWriteError as error:
            key = error.key  # log CORE_CONFIG_CANNOT_WRITE_FILE; this run only
        config = with_host_key(config, key)
"""

from __future__ import annotations

import copy
import json
import os
import stat
import tempfile
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from conch_container import messages
from conch_container.config.app import AppConfig
from conch_container.config.errors import ConfigError
from conch_container.config.loader import source_format_of
from conch_container.config.yamlio import compose_yaml, dump_yaml, load_yaml
from conch_container.log import CodeLogger

#: Group and other permission bits: none may be set on a file holding a private key.
_OTHERS = 0o077


class HostKeyGenerationError(Exception):
    """No host key could be generated."""


class HostKeyWriteError(Exception):
    """The generated key could not be saved in the configuration file.

    :ivar path: the configuration file.
    :ivar reason: why, for the operator.
    :ivar key: the generated key (PEM text), still usable for this run.
    """

    def __init__(self, path: str, reason: str, key: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason
        self.key = key


def generate_host_key() -> str:
    """A new Ed25519 private key in OpenSSH PEM format.

    :raises HostKeyGenerationError: if the cryptography library fails.
    """
    try:
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    except Exception as error:  # any failure of the crypto backend means the same here
        raise HostKeyGenerationError(str(error) or type(error).__name__) from error
    return pem.decode("ascii")


def with_host_key(config: AppConfig, key: str) -> AppConfig:
    """``config`` with ``key`` appended to ``ssh.hostkeys``."""
    return attrs.evolve(config, ssh=attrs.evolve(config.ssh, hostkeys=(*config.ssh.hostkeys, key)))


def generate_and_store_host_key(
    path: str | os.PathLike[str], *, log: CodeLogger | None = None
) -> str:
    """Generate a host key, add it to the configuration file, and return it.

    :param log: where ``CORE_CONFIG_FILE_MODE_RESTRICTED`` goes.
    :raises HostKeyGenerationError: if no key could be generated.
    :raises HostKeyWriteError: if the file could not be updated; the key is
        in the exception.
    """
    key = generate_host_key()
    store_host_key(path, key, log=log)
    return key


def store_host_key(
    path: str | os.PathLike[str], key: str, *, log: CodeLogger | None = None
) -> None:
    """Add ``key`` to ``ssh.hostkeys`` in the configuration file, atomically.

    The file is written accessible to its owner only (:func:`private_mode`);
    when that took access away from its group or others,
    ``CORE_CONFIG_FILE_MODE_RESTRICTED`` is logged on ``log``.

    :raises HostKeyWriteError: if the file could not be read or replaced.
    """
    filename = os.fspath(path)
    try:
        target = os.path.realpath(filename)
        with open(target, encoding="utf-8", newline="") as file:
            text = file.read()
        if source_format_of(filename) == "json":
            updated = _add_to_json(text, key)
        else:
            updated = _add_to_yaml(text, key)
        before, after = _replace_file(target, updated)
    except (OSError, ValueError, ConfigError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise HostKeyWriteError(filename, reason, key) from error
    if before & _OTHERS:
        log = log if log is not None else CodeLogger("conch_container.config.hostkeys")
        log.event(
            messages.CORE_CONFIG_FILE_MODE_RESTRICTED,
            "{file} now holds a private host key: its mode was changed from {before} to "
            "{after}, so only its owner can read it",
            file=filename,
            before=f"{before:04o}",
            after=f"{after:04o}",
        )


def private_mode(mode: int) -> int:
    """``mode`` without group and other permissions (0644 becomes 0600, 0400 stays)."""
    return (stat.S_IMODE(mode) & ~_OTHERS) | stat.S_IRUSR


def _replace_file(target: str, text: str) -> tuple[int, int]:
    """Replace ``target`` by ``text``; return its permission bits before and after."""
    directory = os.path.dirname(target) or "."
    status = os.stat(target)
    before = stat.S_IMODE(status.st_mode)
    after = private_mode(before)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp made the file 0600, so the key was never readable by others
        # on the way.
        os.chmod(temporary, after)
        try:
            os.chown(temporary, status.st_uid, status.st_gid)
        except OSError:
            pass  # only privileged users may give a file away; the mode is what matters
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _sync_directory(directory)
    return before, after


def _sync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable, where the platform allows."""
    try:
        directory_handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory_handle)
    except OSError:
        pass
    finally:
        os.close(directory_handle)


def _folded_key(mapping: dict[str, Any], key: str) -> str:
    for name in mapping:
        if isinstance(name, str) and name.lower() == key:
            return name
    return key


def _add_to_json(text: str, key: str) -> str:
    data = json.loads(text) if text.strip() else None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError("the configuration is not a JSON object")
    ssh_key = _folded_key(data, "ssh")
    ssh = data.get(ssh_key) or {}
    if not isinstance(ssh, dict):
        raise ValueError("the ssh section is not a JSON object")
    hostkeys_key = _folded_key(ssh, "hostkeys")
    ssh[hostkeys_key] = [*(ssh.get(hostkeys_key) or []), key]
    data[ssh_key] = ssh
    indent: int | str = 2
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped:
            whitespace = line[: len(line) - len(stripped)]
            indent = whitespace if "\t" in whitespace else max(len(whitespace), 1)
            break
    result = json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
    # JSON strings never hold a raw line break, so this only changes the layout.
    return result.replace("\n", "\r\n") if "\r\n" in text else result


class _CannotEditInPlace(Exception):
    """The YAML layout is one the textual insertion does not handle."""


def _expected_yaml_data(data: Any, key: str) -> dict[str, Any]:
    expected = copy.deepcopy(data) if data is not None else {}
    ssh = expected.get("ssh") or {}
    if not isinstance(ssh, dict):
        raise ValueError("the ssh section is not a YAML mapping")
    ssh["hostkeys"] = [*(ssh.get("hostkeys") or []), key]
    expected["ssh"] = ssh
    return expected


def _add_to_yaml(text: str, key: str) -> str:
    data = load_yaml(text) if text.strip() else None
    if data is not None and not isinstance(data, dict):
        raise ValueError("the configuration is not a YAML mapping")
    expected = _expected_yaml_data(data, key)
    try:
        updated = _insert_yaml(text, key)
        if load_yaml(updated) == expected:
            return updated
    except (_CannotEditInPlace, ConfigError):
        pass
    # An unusual layout (flow style, several documents...): write the data
    # back in full. Comments are lost, the settings are not.
    return dump_yaml(expected)


def _find(mapping: MappingNode, name: str) -> tuple[Node, Node] | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == name:
            return key_node, value_node
    return None


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _is_empty_flow(node: Node) -> bool:
    return isinstance(node, MappingNode | SequenceNode) and bool(node.flow_style) and not node.value


def _key_block(key: str, column: int, newline: str, *, with_key: bool = True) -> str:
    pad = " " * column
    lines = [f"{pad}hostkeys:"] if with_key else []
    lines.append(f"{pad}  - |")
    lines.extend(f"{pad}    {line}" if line else "" for line in key.rstrip("\n").split("\n"))
    return newline.join(lines) + newline


def _line_end(text: str, index: int) -> int:
    """The index just past the end of the line holding ``index``."""
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _replace_value(text: str, value: Node, block: str, newline: str) -> str:
    """Drop an empty value (``[]``, ``{}``, ``~``, nothing) and put ``block`` below its line."""
    start, end = value.start_mark.index, value.end_mark.index
    line_end = _line_end(text, end)
    rest = text[end:line_end].strip()
    head = text[:start].rstrip(" \t")
    return head + (f" {rest}" if rest else "") + newline + block + text[line_end:]


def _insert_yaml(text: str, key: str) -> str:
    newline = "\r\n" if "\r\n" in text else "\n"
    root = compose_yaml(text) if text.strip() else None
    if root is None or _is_null(root):
        prefix = text if not text or text.endswith("\n") else text + newline
        return prefix + "ssh:" + newline + _key_block(key, 2, newline)
    if not isinstance(root, MappingNode) or root.flow_style or not root.value:
        raise _CannotEditInPlace()
    found = _find(root, "ssh")
    if found is None:
        column: int = root.value[0][0].start_mark.column
        prefix = text if text.endswith("\n") else text + newline
        return prefix + " " * column + "ssh:" + newline + _key_block(key, column + 2, newline)
    ssh_key, ssh_value = found
    if _is_null(ssh_value) or _is_empty_flow(ssh_value):
        block = _key_block(key, ssh_key.start_mark.column + 2, newline)
        return _replace_value(text, ssh_value, block, newline)
    if not isinstance(ssh_value, MappingNode) or ssh_value.flow_style:
        raise _CannotEditInPlace()
    hostkeys = _find(ssh_value, "hostkeys")
    if hostkeys is None:
        column = ssh_value.value[0][0].start_mark.column
        position = _line_end(text, ssh_key.end_mark.index)
        head = text[:position] if text[:position].endswith("\n") else text[:position] + newline
        return head + _key_block(key, column, newline) + text[position:]
    hostkeys_key, hostkeys_value = hostkeys
    if _is_null(hostkeys_value) or _is_empty_flow(hostkeys_value):
        block = _key_block(key, hostkeys_key.start_mark.column, newline, with_key=False)
        return _replace_value(text, hostkeys_value, block, newline)
    raise _CannotEditInPlace()
