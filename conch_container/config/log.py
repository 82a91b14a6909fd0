"""The ``log`` section: level, format and destination of the gateway's own log."""

# setting() returns an attrs field declaration, not a shared default value.
# ruff: noqa: RUF009

from __future__ import annotations

import attrs

from conch_container.codes import Level
from conch_container.config.kinds import Bool, Choice, LogLevel, Section, Str
from conch_container.config.schema import setting

SYSLOG_FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "logaudit",
    "logalert",
    "clock",
    *(f"local{number}" for number in range(8)),
)


@attrs.frozen
class SyslogConfig:
    """Where and how log lines go to syslog."""

    destination: str = setting(
        "destination",
        Str(),
        "/dev/log",
        doc="An absolute path is a Unix socket (stream, then datagram); anything else is "
        "a UDP `host:port`.",
    )
    facility: str = setting("facility", Choice(*SYSLOG_FACILITIES), "auth", doc="Syslog facility.")
    tag: str = setting("tag", Str(), "ContainerSSH", doc="Syslog tag (program name).")
    pid: bool = setting("pid", Bool(), False, doc="Add the process ID to the tag.")


@attrs.frozen
class LogConfig:
    """The gateway's own log: level, format and destination."""

    level: Level = setting(
        "level",
        LogLevel(),
        Level.NOTICE,
        doc="Least severe level logged: `debug`, `info`, `notice`, `warning`, `error`, "
        "`crit`, `alert`, `emerg`, or 7 to 0.",
    )
    format: str = setting(
        "format",
        Choice("ljson", "text"),
        "ljson",
        doc="`ljson` (one JSON object per line) or `text`.",
    )
    destination: str = setting(
        "destination",
        Choice("stdout", "file", "syslog", "test"),
        "stdout",
        doc="`stdout`, `file`, `syslog` or `test`.",
    )
    file: str = setting(
        "file",
        Str(),
        "/var/log/containerssh/containerssh.log",
        doc="Log file when `destination` is `file`; reopened on SIGHUP.",
    )
    syslog: SyslogConfig = setting(
        "syslog", Section(SyslogConfig), SyslogConfig(), doc="Syslog settings."
    )
