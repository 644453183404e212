#!/usr/bin/env bash
# make run: start catalogd (seeding its catalog on first run) and providerd on
# loopback with their embedded defaults, and print what to type next.
# Ctrl-C stops both.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CP_BIN_DIR:-$root/bin}"
state="${CP_RUN_STATE:-$root/.run}"
catalog_listen="${CATALOGD_LISTEN:-127.0.0.1:5000}"
provider_listen="${PROVIDERD_LISTEN:-127.0.0.1:5050}"
catroot="$state/catalogd"
provroot="$state/providerd"
# The unix sockets: API v1 (cimage) and the Docker API (docker).
rundir="$state/run"
socket="$rundir/providerd.sock"
docker_socket="$rundir/docker.sock"

mkdir -p "$state"
if [ ! -d "$catroot" ]; then
  echo "==> first run: seeding the catalog in $catroot"
  # With its host, the application images' base.name is fully qualified.
  "$bin/catalogd" seed --root "$catroot" --base-host "$catalog_listen"
fi

pids=()
stop() {
  [ ${#pids[@]} -gt 0 ] || return 0
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo; echo "==> stopped"
}
trap stop EXIT INT TERM

# fail MESSAGE...: say why make run cannot go on, on stderr, and stop.
fail() {
  echo "make run: $*" >&2
  exit 1
}

# check_free NAME HOST:PORT VARIABLE: refuse an address that something
# answers on already (another make run, say), whose answers the health
# checks below would take for our daemon's.
check_free() {
  local name=$1 addr=$2 var=$3
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
    fail "$name cannot listen on $addr: the address is in use (is another make run running?). Stop it, or set $var to a free address."
  fi
}

# wait_for NAME URL PID LOG OFFSET [CURL ARGS...]: wait up to 10 s for URL
# to answer (the address was free, so the answer is PID's) while PID lives; when it exits or never answers, print what it
# logged since OFFSET (its log's size before it started) and stop.
wait_for() {
  local name=$1 url=$2 pid=$3 log=$4 offset=$5; shift 5
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -c +"$((offset + 1))" "$log" >&2
      fail "$name did not start (its log is $log)."
    fi
    if curl -sS -o /dev/null "$@" "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  tail -c +"$((offset + 1))" "$log" >&2
  fail "$name did not answer on $url within 10 s (its log is $log)."
}

# logsize FILE: its size in bytes, 0 when it does not exist.
logsize() { if [ -f "$1" ]; then wc -c <"$1"; else echo 0; fi; }

check_free catalogd "$catalog_listen" CATALOGD_LISTEN
check_free providerd "$provider_listen" PROVIDERD_LISTEN
if [ -S "$socket" ] && curl -fsS --unix-socket "$socket" http://providerd/healthz >/dev/null 2>&1; then
  fail "providerd answers on $socket already: another make run uses $state. Stop it, or set CP_RUN_STATE to another directory."
fi

echo "==> starting catalogd on http://$catalog_listen (log: $state/catalogd.log)"
offset=$(logsize "$state/catalogd.log")
"$bin/catalogd" serve --root "$catroot" --listen "$catalog_listen" >>"$state/catalogd.log" 2>&1 &
pids+=($!)
wait_for catalogd "http://$catalog_listen/healthz" $! "$state/catalogd.log" "$offset" -f

echo "==> starting providerd on unix://$socket and http://$provider_listen (log: $state/providerd.log)"
offset=$(logsize "$state/providerd.log")
"$bin/providerd" serve --root "$provroot" --run-dir "$rundir" --listen "$provider_listen" \
  --source "catalog=http://$catalog_listen" >>"$state/providerd.log" 2>&1 &
pids+=($!)
wait_for providerd "http://providerd/healthz" $! "$state/providerd.log" "$offset" -f --unix-socket "$socket"

cat <<MSG

catalogd serves the seeded catalog on http://$catalog_listen, and providerd
runs with that catalog as its source. providerd answers on its unix sockets
(API v1 on $socket, the Docker API on $docker_socket),
whose group is the credential, and on http://$provider_listen, where every
request needs the bearer token in $provroot/auth/token.

Try, in another terminal:
  export PATH="$bin:\$PATH"
  export CIMAGE_ENDPOINT=unix://$socket
  cimage find                                   # Find-ContainerImage
  cimage install NanoServer                     # Install-ContainerImage -Name NanoServer
  cimage images                                 # Get-ContainerImage
  cimage install microsoft/iis                  # pulls its parent, WindowsServerCore, first
  cimage remove WindowsServerCore               # refused while microsoft/iis depends on it
  cimage -h                                     # every command
  DOCKER_HOST=unix://$docker_socket docker images   # the docker CLI, on the same store

Over TCP (as the PowerShell module does), with the token:
  CIMAGE_ENDPOINT=http://$provider_listen CIMAGE_TOKEN_FILE=$provroot/auth/token cimage images

catalogd's admin password (for pushes) is in $catroot/auth/admin-password.
Press Ctrl-C to stop both.
MSG
wait
