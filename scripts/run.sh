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
  "$bin/catalogd" seed --root "$catroot"
fi

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo; echo "==> stopped"
}
trap stop EXIT INT TERM

# wait_for NAME URL PID LOG [CURL ARGS...]: wait up to 10 s for URL to answer.
wait_for() {
  local name=$1 url=$2 pid=$3 log=$4; shift 4
  for _ in $(seq 1 100); do
    if curl -fsS "$@" "$url" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "$name exited:"; cat "$log"; exit 1; fi
    sleep 0.1
  done
  echo "$name did not answer on $url"; cat "$log"; exit 1
}

echo "==> starting catalogd on http://$catalog_listen (log: $state/catalogd.log)"
"$bin/catalogd" serve --root "$catroot" --listen "$catalog_listen" >>"$state/catalogd.log" 2>&1 &
pids+=($!)
wait_for catalogd "http://$catalog_listen/healthz" $! "$state/catalogd.log"

echo "==> starting providerd on unix://$socket and http://$provider_listen (log: $state/providerd.log)"
"$bin/providerd" serve --root "$provroot" --run-dir "$rundir" --listen "$provider_listen" \
  --source "catalog=http://$catalog_listen" >>"$state/providerd.log" 2>&1 &
pids+=($!)
wait_for providerd "http://providerd/healthz" $! "$state/providerd.log" --unix-socket "$socket"

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
