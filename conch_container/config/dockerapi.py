"""The Docker Engine API structures ``docker.execution`` holds: their field tables.

ContainerSSH decodes ``docker.execution.container`` / ``host`` / ``network`` /
``platform`` into the Go types of the Docker client (``container.Config``,
``container.HostConfig``, ``network.NetworkingConfig``, ``specs.Platform``).
In YAML their keys are the Go field names in lower case (``workingdir``,
``readonlyrootfs``); in JSON they are the Engine API names (``WorkingDir``,
``ReadonlyRootfs``), matched case-insensitively as Go's JSON decoder does.
These tables say, for :mod:`~conch_container.config.apistruct`, what each
field is called in the Engine API and what kind of value it holds; where the
Go name differs (``NanoCPUs`` / ``NanoCpus``, ``DNS`` / ``Dns``) it is given
too, and both are accepted.

Keys the tables do not know are passed to the engine as written, which
ignores what it does not know (as ContainerSSH's Go decoder tolerated them),
with a ``CONFIG_DOCKER_UNKNOWN_KEY`` warning at load.
"""

from __future__ import annotations

from conch_container import messages
from conch_container.config.apitable import Field, PassUnknown, Shape, Table, Value

#: Docker's structures tolerate unknown fields: newer engines have more.
_PASS_UNKNOWN = PassUnknown(
    messages.CONFIG_DOCKER_UNKNOWN_KEY,
    "not a Docker Engine API field this gateway knows; passed to the engine as it is",
)

_Kind = tuple[Value, Shape]


def _table(go_type: str, *fields: Field, owner: str = "Docker") -> Table:
    return Table(f"{owner} `{go_type}`", fields, lower_case_yaml=True, unknown=_PASS_UNKNOWN)


def _f(name: str, kind: _Kind, table: Table | None = None, *, go: str | None = None) -> Field:
    value, shape = kind
    return Field(name, value, shape, table, go)


S: _Kind = (Value.STR, Shape.ONE)
B: _Kind = (Value.BOOL, Shape.ONE)
N: _Kind = (Value.INT, Shape.ONE)
D: _Kind = (Value.DURATION, Shape.ONE)
#: A list of strings.
L: _Kind = (Value.STR, Shape.LIST)
#: Docker's ``StrSlice``: a list of strings, or one string.
SS: _Kind = (Value.STR_OR_LIST, Shape.ONE)
#: ``map[string]string``.
M: _Kind = (Value.STR, Shape.MAP)
#: ``map[string]struct{}`` (``ExposedPorts``, ``Volumes``).
SET: _Kind = (Value.EMPTY, Shape.MAP)
ANY: _Kind = (Value.ANY, Shape.ONE)
OBJ: _Kind = (Value.OBJECT, Shape.ONE)
OBJ_LIST: _Kind = (Value.OBJECT, Shape.LIST)
#: ``map[string]<struct>``.
OBJ_MAP: _Kind = (Value.OBJECT, Shape.MAP)
#: ``map[string][]<struct>`` (``PortBindings``).
OBJ_LIST_MAP: _Kind = (Value.OBJECT, Shape.LIST_MAP)

HEALTHCHECK = _table(
    "HealthConfig",
    _f("Test", SS),
    _f("Interval", D),
    _f("Timeout", D),
    _f("StartPeriod", D),
    _f("StartInterval", D),
    _f("Retries", N),
)

#: ``container.Config``.
CONTAINER_CONFIG = _table(
    "Config",
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
    _f("Healthcheck", OBJ, HEALTHCHECK),
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

_WEIGHT_DEVICE = _table("WeightDevice", _f("Path", S), _f("Weight", N))
_THROTTLE_DEVICE = _table("ThrottleDevice", _f("Path", S), _f("Rate", N))
_DEVICE_MAPPING = _table(
    "DeviceMapping", _f("PathOnHost", S), _f("PathInContainer", S), _f("CgroupPermissions", S)
)
_DEVICE_REQUEST = _table(
    "DeviceRequest",
    _f("Driver", S),
    _f("Count", N),
    _f("DeviceIDs", L),
    _f("Capabilities", ANY),
    _f("Options", M),
)
_ULIMIT = _table("Ulimit", _f("Name", S), _f("Hard", N), _f("Soft", N))

#: ``container.Resources``, embedded in ``HostConfig``: flat in the Engine API,
#: a ``resources`` mapping in ContainerSSH's YAML. Both are accepted.
RESOURCES = _table(
    "Resources",
    _f("CpuShares", N, go="CPUShares"),
    _f("Memory", N),
    _f("NanoCpus", N, go="NanoCPUs"),
    _f("CgroupParent", S),
    _f("BlkioWeight", N),
    _f("BlkioWeightDevice", OBJ_LIST, _WEIGHT_DEVICE),
    _f("BlkioDeviceReadBps", OBJ_LIST, _THROTTLE_DEVICE),
    _f("BlkioDeviceWriteBps", OBJ_LIST, _THROTTLE_DEVICE),
    _f("BlkioDeviceReadIOps", OBJ_LIST, _THROTTLE_DEVICE),
    _f("BlkioDeviceWriteIOps", OBJ_LIST, _THROTTLE_DEVICE),
    _f("CpuPeriod", N, go="CPUPeriod"),
    _f("CpuQuota", N, go="CPUQuota"),
    _f("CpuRealtimePeriod", N, go="CPURealtimePeriod"),
    _f("CpuRealtimeRuntime", N, go="CPURealtimeRuntime"),
    _f("CpusetCpus", S),
    _f("CpusetMems", S),
    _f("Devices", OBJ_LIST, _DEVICE_MAPPING),
    _f("DeviceCgroupRules", L),
    _f("DeviceRequests", OBJ_LIST, _DEVICE_REQUEST),
    _f("KernelMemory", N),
    _f("KernelMemoryTCP", N),
    _f("MemoryReservation", N),
    _f("MemorySwap", N),
    _f("MemorySwappiness", N),
    _f("OomKillDisable", B),
    _f("PidsLimit", N),
    _f("Ulimits", OBJ_LIST, _ULIMIT),
    _f("CpuCount", N, go="CPUCount"),
    _f("CpuPercent", N, go="CPUPercent"),
    _f("IOMaximumIOps", N),
    _f("IOMaximumBandwidth", N),
)

_LOG_CONFIG = _table("LogConfig", _f("Type", S), _f("Config", M))
_RESTART_POLICY = _table("RestartPolicy", _f("Name", S), _f("MaximumRetryCount", N))
_PORT_BINDING = _table("PortBinding", _f("HostIp", S, go="HostIP"), _f("HostPort", S))
_BIND_OPTIONS = _table(
    "BindOptions",
    _f("Propagation", S),
    _f("NonRecursive", B),
    _f("CreateMountpoint", B),
)
_DRIVER_CONFIG = _table("Driver", _f("Name", S), _f("Options", M))
_VOLUME_OPTIONS = _table(
    "VolumeOptions",
    _f("NoCopy", B),
    _f("Labels", M),
    _f("DriverConfig", OBJ, _DRIVER_CONFIG),
)
_TMPFS_OPTIONS = _table("TmpfsOptions", _f("SizeBytes", N), _f("Mode", N))
_MOUNT = _table(
    "Mount",
    _f("Type", S),
    _f("Source", S),
    _f("Target", S),
    _f("ReadOnly", B),
    _f("Consistency", S),
    _f("BindOptions", OBJ, _BIND_OPTIONS),
    _f("VolumeOptions", OBJ, _VOLUME_OPTIONS),
    _f("TmpfsOptions", OBJ, _TMPFS_OPTIONS),
)

#: ``container.HostConfig`` without the embedded resources.
HOST_CONFIG = _table(
    "HostConfig",
    _f("Binds", L),
    _f("ContainerIDFile", S),
    _f("LogConfig", OBJ, _LOG_CONFIG),
    _f("NetworkMode", S),
    _f("PortBindings", OBJ_LIST_MAP, _PORT_BINDING),
    _f("RestartPolicy", OBJ, _RESTART_POLICY),
    _f("AutoRemove", B),
    _f("VolumeDriver", S),
    _f("VolumesFrom", L),
    _f("ConsoleSize", ANY),
    _f("Annotations", M),
    _f("CapAdd", L),
    _f("CapDrop", L),
    _f("CgroupnsMode", S),
    _f("Dns", L, go="DNS"),
    _f("DnsOptions", L, go="DNSOptions"),
    _f("DnsSearch", L, go="DNSSearch"),
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
    _f("Mounts", OBJ_LIST, _MOUNT),
    _f("MaskedPaths", L),
    _f("ReadonlyPaths", L),
    _f("Init", B),
)

#: The key under which ContainerSSH's YAML nests the embedded resources.
RESOURCES_KEY = "resources"

#: ``container.HostConfig`` as the Engine API has it, the resources flat.
HOST_CONFIG_FLAT = HOST_CONFIG.joined("Docker `HostConfig`", RESOURCES)

_IPAM_CONFIG = _table(
    "EndpointIPAMConfig",
    _f("IPv4Address", S),
    _f("IPv6Address", S),
    _f("LinkLocalIPs", L),
)
_ENDPOINT_SETTINGS = _table(
    "EndpointSettings",
    _f("IPAMConfig", OBJ, _IPAM_CONFIG),
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
    "NetworkingConfig",
    _f("EndpointsConfig", OBJ_MAP, _ENDPOINT_SETTINGS),
)

#: The OCI ``specs.Platform``; JSON names are lower case with dots.
PLATFORM = _table(
    "Platform",
    _f("architecture", S),
    _f("os", S),
    _f("os.version", S, go="OSVersion"),
    _f("os.features", L, go="OSFeatures"),
    _f("variant", S),
    owner="OCI",
)
