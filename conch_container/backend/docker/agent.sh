#!/bin/sh
# conch-container's guest agent: ContainerSSH's containerssh-agent command line
# (console, signal, wait-signal, write-file) in POSIX sh, so that an image
# needs nothing but /bin/sh for process ids, signals and file writes.
#
#   console [--env NAME=VALUE]... [--wait] [--pid] -- PROGRAM [ARGS...]
#       --wait: read one line from stdin first; it must be empty (exit 2 if not)
#       --pid:  write this process's id as 4 little-endian bytes (exit 3 if
#               that fails), then exec PROGRAM, which keeps the id
#       PROGRAM must be a path (no PATH search); exit 127 if it cannot run
#   signal --pid PID --signal NAME
#       exit 0 sent, 1 bad arguments, 2 no such process, 3 not sent
#   wait-signal --signal NAME [--signal NAME]... [--message TEXT]
#       wait for one of the signals, print TEXT (no newline), exit 0
#   write-file PATH
#       copy stdin to PATH, created with mode 0600; exit 0, or 1 on error
#   forward-server
#       run the forwarding helper (/usr/libexec/conch-container/forward-server)
#       when the image has it; exit 1 if not
#
# NAME is one of ABRT ALRM FPE HUP ILL INT KILL PIPE QUIT SEGV TERM USR1 USR2.
# Bad arguments exit 1. Only shell built-ins are used, except sleep in
# wait-signal and cat and chmod in write-file, when the image has them
# (without cat, NUL bytes are dropped).

agent_fail() {
    agent_status=$1
    shift
    printf 'Error: %s\n' "$*" >&2
    exit "$agent_status"
}

agent_signal_name() {
    case $1 in
        ABRT | ALRM | FPE | HUP | ILL | INT | KILL | PIPE | QUIT | SEGV | TERM | USR1 | USR2) ;;
        *) agent_fail 1 "unsupported signal: $1" ;;
    esac
}

agent_console() {
    agent_wait=
    agent_pid=
    agent_program=
    while [ $# -gt 0 ]; do
        case $1 in
            --)
                shift
                [ $# -gt 0 ] || agent_fail 1 "no program to run passed"
                agent_program=1
                break
                ;;
            --env)
                [ $# -ge 2 ] || agent_fail 1 "--env requires an argument"
                case $2 in
                    --*) agent_fail 1 "--env requires an argument" ;;
                    [A-Za-z_]*=*) ;;
                    *=*) agent_fail 1 "--env: invalid variable name in $2" ;;
                    *) agent_fail 1 "--env requires an argument in the format of NAME=VALUE" ;;
                esac
                case ${2%%=*} in
                    *[!A-Za-z0-9_]*) agent_fail 1 "--env: invalid variable name in $2" ;;
                esac
                export "$2"
                shift 2
                ;;
            --wait)
                agent_wait=1
                shift
                ;;
            --pid)
                agent_pid=1
                shift
                ;;
            *) agent_fail 1 "invalid parameter: $1" ;;
        esac
    done
    [ -n "$agent_program" ] || agent_fail 1 "no program to run passed"
    if [ -n "$agent_wait" ]; then
        # A shell reads a line, not a byte: the start signal is a newline
        # (a NUL byte, which shells drop, is accepted before it).
        IFS= read -r agent_line || agent_fail 2 "Failed to read from stdin"
        [ -z "$agent_line" ] || agent_fail 2 "Unexpected first character. Send a newline character to start program."
    fi
    if [ -n "$agent_pid" ]; then
        # The process id as 4 little-endian bytes, written with printf's octal
        # escapes; exec below keeps the id for the program.
        agent_format=
        agent_rest=$$
        for agent_i in 1 2 3 4; do
            agent_byte=$((agent_rest % 256))
            agent_rest=$((agent_rest / 256))
            agent_format="$agent_format\\$((agent_byte / 64))$((agent_byte / 8 % 8))$((agent_byte % 8))"
        done
        # shellcheck disable=SC2059
        printf "$agent_format" || exit 3
    fi
    case $1 in
        */*) ;;
        *) agent_fail 127 "exec: $1: no such file or directory (the program must be a path)" ;;
    esac
    exec "$@"
    exit 127
}

agent_signal() {
    agent_target=
    agent_name=
    while [ $# -gt 0 ]; do
        case $1 in
            --pid)
                [ $# -ge 2 ] || agent_fail 1 "--pid requires an argument"
                [ -z "$agent_target" ] || agent_fail 1 "--pid is duplicate"
                case $2 in
                    '' | *[!0-9]* | 0 | 0*) agent_fail 1 "--pid requires a positive integer argument" ;;
                esac
                agent_target=$2
                shift 2
                ;;
            --signal)
                [ $# -ge 2 ] || agent_fail 1 "--signal requires an argument"
                agent_signal_name "$2"
                agent_name=$2
                shift 2
                ;;
            *) agent_fail 1 "unknown option: $1" ;;
        esac
    done
    [ -n "$agent_target" ] || agent_fail 1 "missing required --pid option"
    [ -n "$agent_name" ] || agent_fail 1 "missing required --signal option"
    if [ ! -d "/proc/$agent_target" ] && ! kill -0 "$agent_target" 2>/dev/null; then
        agent_fail 2 "process not found ($agent_target)"
    fi
    kill -s "$agent_name" "$agent_target" || agent_fail 3 "failed to send signal $agent_name to $agent_target"
    exit 0
}

agent_wait_signal() {
    agent_signals=
    agent_message=
    while [ $# -gt 0 ]; do
        case $1 in
            --message)
                [ $# -ge 2 ] || agent_fail 1 "--message requires an argument"
                [ -z "$agent_message" ] || agent_fail 1 "--message is duplicate"
                agent_message=$2
                shift 2
                ;;
            --signal)
                [ $# -ge 2 ] || agent_fail 1 "--signal requires an argument"
                agent_signal_name "$2"
                agent_signals="$agent_signals $2"
                shift 2
                ;;
            *) agent_fail 1 "unknown option: $1" ;;
        esac
    done
    [ -n "$agent_signals" ] || agent_fail 1 "missing required --signal option"
    agent_received=
    agent_blocker=
    for agent_name in $agent_signals; do
        # The handler also ends the blocking child (below), so that `wait`
        # returns even if the signal came just before it started.
        # shellcheck disable=SC2064
        trap "agent_received=$agent_name; agent_unblock" "$agent_name"
    done
    # Any other signal that would end the agent ends it the same way, after
    # the blocking child below is gone.
    for agent_name in HUP INT QUIT ABRT USR1 USR2 PIPE ALRM TERM; do
        case " $agent_signals " in
            *" $agent_name "*) ;;
            # shellcheck disable=SC2064
            *) trap "agent_die $agent_name" "$agent_name" ;;
        esac
    done
    # The shell blocks in `wait` on a child, which a trapped signal interrupts
    # (POSIX). The child is `sleep` when the image has it, else a shell that
    # stops itself; it holds none of the agent's streams, so if the agent is
    # killed (KILL) its output still ends, and the child is left behind (a
    # sleep for at most a minute).
    while [ -z "$agent_received" ]; do
        if [ -z "$agent_blocker" ] || ! kill -0 "$agent_blocker" 2>/dev/null; then
            if command -v sleep >/dev/null 2>&1; then
                sleep 60 </dev/null >/dev/null 2>&1 &
            else
                /bin/sh -c 'kill -s STOP $$' </dev/null >/dev/null 2>&1 &
            fi
            agent_blocker=$!
        fi
        # A signal handled before the child existed set the flag only.
        [ -n "$agent_received" ] || wait "$agent_blocker"
    done
    agent_unblock
    printf '%s' "$agent_message"
    exit 0
}

agent_unblock() {
    # The agent has nothing more to report on stderr, and some shells would
    # print a notice there about the killed child.
    exec 2>/dev/null
    # $! is the newest child, the blocker, even when the signal came between
    # starting it and noting its id in agent_blocker.
    for agent_child in $agent_blocker $!; do
        kill -s KILL "$agent_child"
    done
}

agent_die() {
    agent_unblock
    trap - "$1"
    kill -s "$1" $$
}

agent_copy_stdin() {
    if command -v cat >/dev/null 2>&1; then
        cat
    else
        while IFS= read -r agent_line; do
            printf '%s\n' "$agent_line" || return 1
        done
        printf '%s' "$agent_line"
    fi
}

agent_write_file() {
    [ $# -eq 1 ] || agent_fail 1 "write-file requires exactly one path"
    [ -n "$1" ] || agent_fail 1 "write-file requires a path"
    umask 077
    # Created (or truncated) and restricted before any content goes in.
    true >"$1" || agent_fail 1 "Error opening file $1"
    if command -v chmod >/dev/null 2>&1; then
        chmod 600 "$1" || agent_fail 1 "Error chmod'ing file $1"
    fi
    agent_copy_stdin >"$1" || agent_fail 1 "Error writing file $1"
    exit 0
}

[ $# -gt 0 ] || agent_fail 1 "not enough parameters"
agent_mode=$1
shift
case $agent_mode in
    console) agent_console "$@" ;;
    signal) agent_signal "$@" ;;
    wait-signal) agent_wait_signal "$@" ;;
    write-file) agent_write_file "$@" ;;
    forward-server)
        # The packet protocol needs a program of its own; the image may carry it.
        agent_helper=/usr/libexec/conch-container/forward-server
        [ -x "$agent_helper" ] || agent_fail 1 "forward-server: this image has no forwarding helper ($agent_helper)"
        exec "$agent_helper" forward-server
        ;;
    *) agent_fail 1 "invalid mode: $agent_mode" ;;
esac
