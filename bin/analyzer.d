#!/usr/bin/env bash
# Service script for a skyline-analyzer daemon: {start|stop|restart|status|run} (docs/analyzer.md#service-script).
#
# The service name is this file's name up to the first dot, so bin/horizon.d can be a copy or a symlink:
# the "analyzer" service runs `skyline-analyzer run`, any other service `skyline-analyzer <service>`.
# Exit codes: status 0 running, 1 a stale pid file (no process of this program behind it), 3 not running;
# start/stop 0 on success, 1 on failure (start returns the daemon's own code when it fails during
# start-up); usage 2. start and stop remove a stale pid file (saying so) and go on.
# Settings come from $SKYLINE_SETTINGS, else this checkout's settings.py (exported here: the package itself
# never looks beside its own files), read by the Python loader.

SERVICE_NAME=$(basename "$0")
SERVICE_NAME=${SERVICE_NAME%%.*}
BASEDIR=$(cd "$(dirname "$0")/.." && pwd)
SKYLINE_CONF=${SKYLINE_CONF:-/etc/skyline/skyline.conf}
if [ -z "${SKYLINE_SETTINGS:-}" ] && [ -f "$BASEDIR/settings.py" ]; then
    export SKYLINE_SETTINGS="$BASEDIR/settings.py"
fi
# Seconds to wait for the daemon to report that it started (settings, self-test and Redis checks done).
START_WAIT=${START_WAIT:-15}

if [ "$SERVICE_NAME" = "analyzer" ]; then
    SUBCOMMAND=run
else
    SUBCOMMAND=$SERVICE_NAME
fi

# Optional operator configuration: PYTHON_VIRTUALENV="true" with USE_PYTHON=<interpreter>.
if [ -f "$SKYLINE_CONF" ]; then
    if ! bash -n "$SKYLINE_CONF"; then
        echo "error - $SKYLINE_CONF has a syntax error"
        exit 1
    fi
    # shellcheck disable=SC1090
    source "$SKYLINE_CONF"
fi

# COMMAND runs the service; PYTHON is its interpreter, used to read the settings.
if [ "${PYTHON_VIRTUALENV:-}" = "true" ] && [ -n "${USE_PYTHON:-}" ]; then
    if [ ! -x "$USE_PYTHON" ] || ! "$USE_PYTHON" --version >/dev/null 2>&1; then
        echo "error - USE_PYTHON $USE_PYTHON is not a working interpreter"
        exit 1
    fi
    COMMAND=("$USE_PYTHON" -m skyline_analyzer)
    PYTHON=("$USE_PYTHON")
else
    if [ -x "$BASEDIR/.venv/bin/skyline-analyzer" ]; then
        PROGRAM="$BASEDIR/.venv/bin/skyline-analyzer"
    elif command -v skyline-analyzer >/dev/null 2>&1; then
        PROGRAM=$(command -v skyline-analyzer)
    else
        echo "error - skyline-analyzer not found in $BASEDIR/.venv/bin or on PATH"
        exit 1
    fi
    COMMAND=("$PROGRAM")
    # The console script's own interpreter, from its #! line (it may be "/usr/bin/env python3").
    read -r -a PYTHON <<< "$(sed -n '1s/^#![[:space:]]*//p' "$PROGRAM")"
fi

# LOG_PATH, PID_PATH, SKYLINE_TMP_DIR and MAX_ANALYZER_PROCESS_RUNTIME from the package's settings loader
# ($SKYLINE_SETTINGS, else the repository's settings.py, defaults for what it leaves out). The loader
# validates every setting first (in a fraction of a second: it imports no numerical library), so invalid
# settings stop every action here with its message, naming the file, line and setting.
# -P: the current directory must not shadow the installed package.
read_settings() {
    "${PYTHON[@]}" -P -m skyline_analyzer.config LOG_PATH PID_PATH SKYLINE_TMP_DIR MAX_ANALYZER_PROCESS_RUNTIME
}

case "$1" in
    start|stop|restart|status|run) ;;
    *)
        echo "Usage: $0 {start|stop|run|status}"
        exit 2
        ;;
esac

if ! PATHS=$(read_settings); then
    echo "error - invalid settings: nothing done"
    exit 1
fi
eval "$PATHS"
for dir_name in LOG_PATH PID_PATH; do
    if [ ! -d "${!dir_name}" ]; then
        echo "error - $dir_name ${!dir_name} does not exist"
        exit 1
    fi
done

PID_FILE="$PID_PATH/$SERVICE_NAME.pid"
LOG_FILE="$LOG_PATH/$SERVICE_NAME.log"
# SIGTERM lets the daemon finish its run's bookkeeping: allow a full run before resorting to SIGKILL.
STOP_WAIT=$((MAX_ANALYZER_PROCESS_RUNTIME + 30))

log_line() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') :: $$ :: $SERVICE_NAME.d :: $*" >> "$LOG_FILE"
}

# Sets PID from the pid file and OURS=1 when that pid is a live process of this program; returns 1 when
# there is no pid file. A pid file naming anything else (a dead pid, a pid recycled by another program,
# garbage) is stale: it cannot stand for a running daemon.
read_state() {
    PID=""
    OURS=0
    [ -f "$PID_FILE" ] || return 1
    PID=$(head -c 32 "$PID_FILE" | head -n 1)
    if [[ "$PID" =~ ^[0-9]+$ ]] && [ "$PID" -gt 1 ] && is_alive "$PID" && is_ours "$PID"; then
        OURS=1
    fi
    return 0
}

# True when the process exists and is not a zombie (an exited daemon whose parent has not reaped it yet).
is_alive() {
    [ -f "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# True when the process runs this program with this service's subcommand: an argument naming the
# skyline-analyzer console script (or the skyline_analyzer module after -m) followed by $SUBCOMMAND.
is_ours() {
    local -a argv=()
    local i
    mapfile -d '' -t argv < "/proc/$1/cmdline" 2>/dev/null || return 1
    for ((i = 0; i + 1 < ${#argv[@]}; i++)); do
        case "${argv[i]}" in
            skyline-analyzer|*/skyline-analyzer|skyline_analyzer)
                [ "${argv[i + 1]}" = "$SUBCOMMAND" ] && return 0
                ;;
        esac
    done
    return 1
}

# Why the pid file is stale, for the messages.
stale_reason() {
    if ! [[ "$PID" =~ ^[0-9]+$ ]] || [ "$PID" -le 1 ]; then
        echo "it holds no valid pid"
    elif ! is_alive "$PID"; then
        echo "pid $PID is not running"
    else
        echo "pid $PID is another program"
    fi
}

# Removes a stale pid file, saying so.
clear_stale() {
    local reason
    reason=$(stale_reason)
    rm -f "$PID_FILE"
    log_line "removed the stale pid file $PID_FILE: $reason"
    echo "$SERVICE_NAME: removed the stale pid file $PID_FILE ($reason)"
}

do_status() {
    if ! read_state; then
        echo "$SERVICE_NAME is not running"
        return 3
    fi
    if [ "$OURS" = 1 ]; then
        echo "$SERVICE_NAME is running with pid $PID"
        return 0
    fi
    echo "$SERVICE_NAME is dead and pid file exists - $PID_FILE ($(stale_reason))"
    return 1
}

do_start() {
    if read_state; then
        if [ "$OURS" = 1 ]; then
            echo "$SERVICE_NAME is already running with pid $PID"
            return 0
        fi
        clear_stale
    fi
    [ -f "$LOG_FILE" ] && cp "$LOG_FILE" "$LOG_FILE.last"
    touch "$LOG_FILE.lock" "$LOG_FILE.wait"
    # setsid: the daemon leads its own session, so it outlives this shell and its terminal. It appends to
    # the log (nothing is truncated, unlike python-daemon), so the old log needs no re-prepending.
    nohup setsid "${COMMAND[@]}" "$SUBCOMMAND" >> "$LOG_FILE" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" > "$PID_FILE"
    local waited=0
    while [ -f "$LOG_FILE.wait" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            local code=$?
            [ "$code" = 0 ] && code=1
            rm -f "$LOG_FILE.wait" "$LOG_FILE.lock" "$PID_FILE"
            log_line "error - failed to start $SERVICE_NAME (exit code $code)"
            echo "error - failed to start $SERVICE_NAME (exit code $code); the end of $LOG_FILE:"
            tail -n 5 "$LOG_FILE"
            return "$code"
        fi
        if [ "$waited" -ge $((START_WAIT * 5)) ]; then
            rm -f "$LOG_FILE.wait" "$LOG_FILE.lock"
            log_line "error - log management failed"
            echo "$SERVICE_NAME started with pid $pid, but log management failed"
            return 0
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    log_line "log management done"
    rm -f "$LOG_FILE.lock"
    echo "$SERVICE_NAME started with pid $pid"
    return 0
}

do_stop() {
    if ! read_state; then
        echo "$SERVICE_NAME is not running"
        return 0
    fi
    if [ "$OURS" != 1 ]; then
        clear_stale
        echo "$SERVICE_NAME is not running"
        return 0
    fi
    log_line "stopping $SERVICE_NAME with SIGTERM to pid $PID"
    kill -TERM "$PID"
    local waited=0
    while is_alive "$PID" && [ "$waited" -lt $((STOP_WAIT * 5)) ]; do
        sleep 0.2
        waited=$((waited + 1))
    done
    if is_alive "$PID"; then
        log_line "$SERVICE_NAME pid $PID ignored SIGTERM for $STOP_WAIT s: SIGKILL to its process group"
        kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID"
        sleep 0.5
    fi
    if is_alive "$PID"; then
        log_line "error - failed to stop all $SERVICE_NAME processes"
        echo "error - failed to stop all $SERVICE_NAME processes"
        return 1
    fi
    rm -f "$PID_FILE"
    log_line "$SERVICE_NAME has been stopped"
    echo "$SERVICE_NAME has been stopped"
    return 0
}

case "$1" in
    start)
        do_start
        ;;
    stop)
        do_stop
        ;;
    restart)
        do_stop || exit $?
        do_start
        ;;
    status)
        do_status
        ;;
    run)
        echo "running $SERVICE_NAME"
        exec "${COMMAND[@]}" "$SUBCOMMAND"
        ;;
esac
