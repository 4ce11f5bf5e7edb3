#!/bin/sh
# pg.sh - a throwaway PostgreSQL 15 for tests: initdb in a directory the
# test owns, listening on 127.0.0.1 and a free port only, never a system
# service. PostgreSQL refuses to run as root, so as root it runs as the
# `postgres` user Debian's package creates.
#
#   pg.sh start DIR     initdb (first time) and start; prints the URL
#   pg.sh stop DIR      stop (fast shutdown)
#   pg.sh kill DIR      stop at once, as a crash would (immediate shutdown)
#   pg.sh restart DIR   start again on the same port; prints the URL
#   pg.sh guard DIR PID leaves a watcher that stops the server and removes
#                       DIR once process PID (the test) is gone, however
#                       it went: kill -9 and a ctest timeout run no exit
#                       handler of the test's
#
# The URL is postgresql://telemed@127.0.0.1:PORT/telemed (trust auth on
# loopback: the cluster lives only as long as the test).
set -eu
cmd=${1:?usage: pg.sh start|stop|kill|restart DIR}
dir=${2:?usage: pg.sh start|stop|kill|restart DIR}
bin=${TM_PG_BIN:-/usr/lib/postgresql/15/bin}
data=$dir/data

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
    echo "postgresql://telemed@127.0.0.1:$(cat "$dir/port")/telemed"
}

init() {
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        runuser -u postgres -- test -w "$dir" || {
            echo "pg.sh: $dir is not reachable by the postgres user (a parent is private?)" >&2
            exit 1
        }
    fi
    as_owner "$bin/initdb" -D "$data" -U telemed --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # Speed over durability of the machine (the data dies with the test);
    # commits still wait for the server (synchronous_commit stays on), so a
    # killed server loses nothing it acknowledged.
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
full_page_writes = off
max_connections = 100
CONF
}

# PostgreSQL cannot take port 0: try random free-looking ports until one binds.
start_on() {
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o "-p $1" start \
        >/dev/null 2>&1
}

case $cmd in
start)
    [ -d "$data" ] || init
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
        if start_on "$port"; then
            echo "$port" >"$dir/port"
            as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U telemed telemed 2>/dev/null || true
            url
            exit 0
        fi
    done
    echo "pg.sh: could not start PostgreSQL; see $dir/server.log" >&2
    cat "$dir/server.log" >&2 || true
    exit 1
    ;;
restart)
    start_on "$(cat "$dir/port")" || { cat "$dir/server.log" >&2; exit 1; }
    url
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
kill)
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
guard)
    # Its own session, and a child of init once this script returns: what
    # kills the test's process group or tree does not reach the watcher.
    setsid sh "$0" watch "$dir" "${3:?usage: pg.sh guard DIR PID}" </dev/null >/dev/null 2>&1 &
    ;;
watch)
    # A zombie is gone too: its parent has just not read its status yet.
    while st=$(ps -o stat= -p "$3" 2>/dev/null); do
        case $st in *Z*) break ;; esac
        sleep 1
    done
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "pg.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
