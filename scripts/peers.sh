#!/usr/bin/env bash
# Throwaway test peers on loopback, for the README's test command.
#   scripts/peers.sh start DIR   -> starts what the tests need under DIR, prints `export` lines
#   scripts/peers.sh stop DIR    -> stops them
# Everything binds 127.0.0.1 only. Installs missing Debian packages with apt.
set -euo pipefail
cmd=${1:?start|stop}
PEERS=${2:?peers dir}
PG_PORT=${PG_PORT:-15432}
PG_BIN=/usr/lib/postgresql/15/bin

need_pkg() { # need_pkg BINARY PACKAGE...
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
    echo "peers: installing ${*:2}" >&2
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2 || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >&2
  fi
}

start_pg() {
  if [ ! -x "$PG_BIN/initdb" ]; then need_pkg "$PG_BIN/initdb" postgresql; fi
  mkdir -p "$PEERS/pg"
  chown postgres:postgres "$PEERS/pg" 2>/dev/null || true
  chmod 755 "$PEERS"
  if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
  $AS "$PG_BIN/initdb" -D "$PEERS/pg/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$PEERS/pg/initdb.log" 2>&1
  $AS "$PG_BIN/pg_ctl" -D "$PEERS/pg/data" -l "$PEERS/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PEERS/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >&2
  echo "export CENTRALINO_TEST_PG=postgres://postgres@127.0.0.1:$PG_PORT"
}

stop_pg() {
  [ -d "$PEERS/pg/data" ] || return 0
  if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
  $AS "$PG_BIN/pg_ctl" -D "$PEERS/pg/data" -m fast stop >&2 || true
}

case "$cmd" in
  start) start_pg ;;
  stop) stop_pg ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
