"""Docker Engine API field names for the structs ContainerSSH's config embeds.

ContainerSSH decodes ``docker.execution.container`` / ``host`` / ``network`` /
``platform`` into the Go types of the Docker client (``container.Config``,
``container.HostConfig``, ``network.NetworkingConfig``, ``specs.Platform``).
In YAML their keys are the Go field names in lower case (``workingdir``,
``readonlyrootfs``); in JSON they are the Engine API names (``WorkingDir``,
``ReadonlyRootfs``), matched case-insensitively as Go's JSON decoder does.
These tables map both spellings to the Engine API name and say what kind of
value each field holds, so :mod:`conch_container.backend.docker.containerconfig`
can produce exact Engine API JSON.

Each table maps the lower-cased name to a :class:`Field`. Where the Go field
name and the JSON name differ (``NanoCPUs`` / ``NanoCpus``, ``DNS`` / ``Dns``)
both lower-case forms are entries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs


class Kind(enum.Enum):
    """What a field's value is."""

    STR = "string"
    BOOL = "boolean"
    INT = "integer"
    STR_LIST = "list of strings"
    #: Docker's ``StrSlice``: a list of strings, or one string.
    STR_SLICE = "string or list of strings"
    #: ``map[string]string``; scalar values are turned into strings as Go's YAML decoder does.
    STR_MAP = "mapping of strings"
    #: ``map[string]struct{}`` (``ExposedPorts``, ``Volumes``).
    SET = "mapping with empty values"
    #: ``time.Duration``: integer nanoseconds, or a Go duration string (``30s``).
    DURATION = "duration"
    OBJECT = "mapping"
    OBJECT_LIST = "list of mappings"
    #: ``map[string]<struct>``: user keys, struct values.
    OBJECT_MAP = "mapping of mappings"
    #: ``map[string][]<struct>`` (``PortBindings``).
    OBJECT_LIST_MAP = "mapping of lists of mappings"
    #: Passed through unchanged.
    ANY = "any value"


@attrs.frozen
class Field:
    """One struct field: its Engine API JSON name, its kind, its nested struct."""

    api_name: str
    kind: Kind
    schema: Mapping[str, Field] | None = None


def _table(*fields: tuple[str, Field] | Field) -> dict[str, Field]:
    """Index fields by the lower-cased API name and, where given, the Go name."""
    table: dict[str, Field] = {}
    for entry in fields:
        if isinstance(entry, tuple):
            go_name, field = entry
            table[go_name.lower()] = field
        else:
            field = entry
        table[field.api_name.lower()] = field
    return table


def _f(api_name: str, kind: Kind, schema: Mapping[str, Field] | None = None) -> Field:
    return Field(api_name, kind, schema)


S, B, N, L, SS, M, SET, D, ANY = (
    Kind.STR,
    Kind.BOOL,
    Kind.INT,
    Kind.STR_LIST,
    Kind.STR_SLICE,
    Kind.STR_MAP,
    Kind.SET,
    Kind.DURATION,
    Kind.ANY,
)

HEALTHCHECK = _table(
    _f("Test", SS),
    _f("Interval", D),
    _f("Timeout", D),
    _f("StartPeriod", D),
    _f("StartInterval", D),
    _f("Retries", N),
)

#: ``container.Config``.
CONTAINER_CONFIG = _table(
    _f("Hostname", S),
    _f("Domainname", S),
    _f("User", S),
    _f("AttachStdin", B),
    _f("AttachStdout", B),
    _f("AttachStderr", B),
    _f("ExposedPorts", SET),
    _f("Tty", B),
    _f("OpenStdin", B),
    _f("StdinOnce", B),
    _f("Env", L),
    _f("Cmd", SS),
    _f("Healthcheck", Kind.OBJECT, HEALTHCHECK),
    _f("ArgsEscaped", B),
    _f("Image", S),
    _f("Volumes", SET),
    _f("WorkingDir", S),
    _f("Entrypoint", SS),
    _f("NetworkDisabled", B),
    _f("MacAddress", S),
    _f("OnBuild", L),
    _f("Labels", M),
    _f("StopSignal", S),
    _f("StopTimeout", N),
    _f("Shell", SS),
)

_WEIGHT_DEVICE = _table(_f("Path", S), _f("Weight", N))
_THROTTLE_DEVICE = _table(_f("Path", S), _f("Rate", N))
_DEVICE_MAPPING = _table(_f("PathOnHost", S), _f("PathInContainer", S), _f("CgroupPermissions", S))
_DEVICE_REQUEST = _table(
    _f("Driver", S),
    _f("Count", N),
    _f("DeviceIDs", L),
    _f("Capabilities", ANY),
    _f("Options", M),
)
_ULIMIT = _table(_f("Name", S), _f("Hard", N), _f("Soft", N))

#: ``container.Resources``, embedded in ``HostConfig``: flat in the Engine API,
#: a ``resources`` mapping in ContainerSSH's YAML. Both are accepted.
RESOURCES = _table(
    ("CPUShares", _f("CpuShares", N)),
    _f("Memory", N),
    ("NanoCPUs", _f("NanoCpus", N)),
    _f("CgroupParent", S),
    _f("BlkioWeight", N),
    _f("BlkioWeightDevice", Kind.OBJECT_LIST, _WEIGHT_DEVICE),
    _f("BlkioDeviceReadBps", Kind.OBJECT_LIST, _THROTTLE_DEVICE),
    _f("BlkioDeviceWriteBps", Kind.OBJECT_LIST, _THROTTLE_DEVICE),
    _f("BlkioDeviceReadIOps", Kind.OBJECT_LIST, _THROTTLE_DEVICE),
    _f("BlkioDeviceWriteIOps", Kind.OBJECT_LIST, _THROTTLE_DEVICE),
    ("CPUPeriod", _f("CpuPeriod", N)),
    ("CPUQuota", _f("CpuQuota", N)),
    ("CPURealtimePeriod", _f("CpuRealtimePeriod", N)),
    ("CPURealtimeRuntime", _f("CpuRealtimeRuntime", N)),
    _f("CpusetCpus", S),
    _f("CpusetMems", S),
    _f("Devices", Kind.OBJECT_LIST, _DEVICE_MAPPING),
    _f("DeviceCgroupRules", L),
    _f("DeviceRequests", Kind.OBJECT_LIST, _DEVICE_REQUEST),
    _f("KernelMemory", N),
    _f("KernelMemoryTCP", N),
    _f("MemoryReservation", N),
    _f("MemorySwap", N),
    _f("MemorySwappiness", N),
    _f("OomKillDisable", B),
    _f("PidsLimit", N),
    _f("Ulimits", Kind.OBJECT_LIST, _ULIMIT),
    ("CPUCount", _f("CpuCount", N)),
    ("CPUPercent", _f("CpuPercent", N)),
    _f("IOMaximumIOps", N),
    _f("IOMaximumBandwidth", N),
)

_LOG_CONFIG = _table(_f("Type", S), _f("Config", M))
_RESTART_POLICY = _table(_f("Name", S), _f("MaximumRetryCount", N))
_PORT_BINDING = _table(("HostIP", _f("HostIp", S)), _f("HostPort", S))
_BIND_OPTIONS = _table(
    _f("Propagation", S),
    _f("NonRecursive", B),
    _f("CreateMountpoint", B),
)
_DRIVER_CONFIG = _table(_f("Name", S), _f("Options", M))
_VOLUME_OPTIONS = _table(
    _f("NoCopy", B),
    _f("Labels", M),
    _f("DriverConfig", Kind.OBJECT, _DRIVER_CONFIG),
)
_TMPFS_OPTIONS = _table(_f("SizeBytes", N), _f("Mode", N))
_MOUNT = _table(
    _f("Type", S),
    _f("Source", S),
    _f("Target", S),
    _f("ReadOnly", B),
    _f("Consistency", S),
    _f("BindOptions", Kind.OBJECT, _BIND_OPTIONS),
    _f("VolumeOptions", Kind.OBJECT, _VOLUME_OPTIONS),
    _f("TmpfsOptions", Kind.OBJECT, _TMPFS_OPTIONS),
)

#: ``container.HostConfig`` without the embedded resources.
HOST_CONFIG = _table(
    _f("Binds", L),
    _f("ContainerIDFile", S),
    _f("LogConfig", Kind.OBJECT, _LOG_CONFIG),
    _f("NetworkMode", S),
    _f("PortBindings", Kind.OBJECT_LIST_MAP, _PORT_BINDING),
    _f("RestartPolicy", Kind.OBJECT, _RESTART_POLICY),
    _f("AutoRemove", B),
    _f("VolumeDriver", S),
    _f("VolumesFrom", L),
    _f("ConsoleSize", ANY),
    _f("Annotations", M),
    _f("CapAdd", L),
    _f("CapDrop", L),
    _f("CgroupnsMode", S),
    ("DNS", _f("Dns", L)),
    ("DNSOptions", _f("DnsOptions", L)),
    ("DNSSearch", _f("DnsSearch", L)),
    _f("ExtraHosts", L),
    _f("GroupAdd", L),
    _f("IpcMode", S),
    _f("Cgroup", S),
    _f("Links", L),
    _f("OomScoreAdj", N),
    _f("PidMode", S),
    _f("Privileged", B),
    _f("PublishAllPorts", B),
    _f("ReadonlyRootfs", B),
    _f("SecurityOpt", L),
    _f("StorageOpt", M),
    _f("Tmpfs", M),
    _f("UTSMode", S),
    _f("UsernsMode", S),
    _f("ShmSize", N),
    _f("Sysctls", M),
    _f("Runtime", S),
    _f("Isolation", S),
    _f("Mounts", Kind.OBJECT_LIST, _MOUNT),
    _f("MaskedPaths", L),
    _f("ReadonlyPaths", L),
    _f("Init", B),
)

#: The key under which ContainerSSH's YAML nests the embedded resources.
RESOURCES_KEY = "resources"

_IPAM_CONFIG = _table(
    _f("IPv4Address", S),
    _f("IPv6Address", S),
    _f("LinkLocalIPs", L),
)
_ENDPOINT_SETTINGS = _table(
    ("IPAMConfig", _f("IPAMConfig", Kind.OBJECT, _IPAM_CONFIG)),
    _f("Links", L),
    _f("Aliases", L),
    _f("NetworkID", S),
    _f("EndpointID", S),
    _f("Gateway", S),
    _f("IPAddress", S),
    _f("IPPrefixLen", N),
    _f("IPv6Gateway", S),
    _f("GlobalIPv6Address", S),
    _f("GlobalIPv6PrefixLen", N),
    _f("MacAddress", S),
    _f("DriverOpts", M),
)

#: ``network.NetworkingConfig``.
NETWORKING_CONFIG = _table(
    _f("EndpointsConfig", Kind.OBJECT_MAP, _ENDPOINT_SETTINGS),
)

#: The OCI ``specs.Platform``; JSON names are lower case with dots.
PLATFORM = _table(
    _f("architecture", S),
    _f("os", S),
    ("OSVersion", _f("os.version", S)),
    ("OSFeatures", _f("os.features", L)),
    _f("variant", S),
)
