#!/usr/bin/env bash
# Service script for a skyline-analyzer daemon: {start|stop|restart|status|run} (docs/analyzer.md#service-script).
#
# The service name is this file's name up to the first dot, so bin/horizon.d can be a copy or a symlink:
# the "analyzer" service runs `skyline-analyzer run`, any other service `skyline-analyzer <service>`.
# Exit codes: status 0 running, 1 dead with a pid file (or a bad pid file), 3 not running; start/stop 0 on
# success, 1 on failure (start returns the daemon's own code when it fails during start-up); usage 2.
# Settings come from $SKYLINE_SETTINGS (else the repository's settings.py), read by the Python loader.

SERVICE_NAME=$(basename "$0")
SERVICE_NAME=${SERVICE_NAME%%.*}
BASEDIR=$(cd "$(dirname "$0")/.." && pwd)
SKYLINE_CONF=${SKYLINE_CONF:-/etc/skyline/skyline.conf}
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
mkdir -p "$SKYLINE_TMP_DIR" || exit 1

PID_FILE="$PID_PATH/$SERVICE_NAME.pid"
LOG_FILE="$LOG_PATH/$SERVICE_NAME.log"
# SIGTERM lets the daemon finish its run's bookkeeping: allow a full run before resorting to SIGKILL.
STOP_WAIT=$((MAX_ANALYZER_PROCESS_RUNTIME + 30))

log_line() {
    echo "$(date '+%Y-%m-%d %H:%M:%S') :: $$ :: $SERVICE_NAME.d :: $*" >> "$LOG_FILE"
}

# Sets PID, PID_VALID (an integer > 1) and ALIVE from the pid file; returns 1 when there is none.
read_state() {
    PID=""
    PID_VALID=0
    ALIVE=0
    [ -f "$PID_FILE" ] || return 1
    PID=$(head -n 1 "$PID_FILE")
    if [[ "$PID" =~ ^[0-9]+$ ]] && [ "$PID" -gt 1 ]; then
        PID_VALID=1
        is_alive "$PID" && ALIVE=1
    fi
    return 0
}

# True when the process exists and is not a zombie (an exited daemon whose parent has not reaped it yet).
is_alive() {
    [ -f "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# True when the pid is one of ours (guards against a recycled pid).
is_ours() {
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q -- "skyline.* $SUBCOMMAND"
}

do_status() {
    if ! read_state; then
        echo "$SERVICE_NAME is not running"
        return 3
    fi
    [ "$PID_VALID" = 1 ] || return 1
    if [ "$ALIVE" = 1 ]; then
        echo "$SERVICE_NAME is running with pid $PID"
        return 0
    fi
    echo "$SERVICE_NAME is dead and pid file exists - $PID_FILE"
    return 1
}

do_start() {
    if read_state; then
        if [ "$PID_VALID" != 1 ]; then
            echo "error: A pid file exists at $PID_FILE without a valid pid"
            return 1
        fi
        if [ "$ALIVE" = 1 ]; then
            echo "$SERVICE_NAME is already running with pid $PID"
            return 0
        fi
        echo "$SERVICE_NAME is dead and pid file exists - $PID_FILE"
        return 1
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
    if [ "$PID_VALID" != 1 ]; then
        echo "error: A pid file exists at $PID_FILE without a valid pid"
        return 1
    fi
    if [ "$ALIVE" != 1 ]; then
        echo "$SERVICE_NAME is dead and pid file exists - $PID_FILE"
        return 1
    fi
    if ! is_ours "$PID"; then
        echo "error: pid $PID in $PID_FILE is not a $SERVICE_NAME process"
        return 1
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
