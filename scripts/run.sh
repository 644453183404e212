#!/usr/bin/env bash
# make run: start catalogd (seeding its catalog on first run) and providerd on
# loopback with their embedded defaults, and print what to type next.
# Ctrl-C stops both.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
state="$root/.run"
catalog_listen="${CATALOGD_LISTEN:-127.0.0.1:5000}"
provider_listen="${PROVIDERD_LISTEN:-127.0.0.1:5050}"
docker_listen="${PROVIDERD_DOCKER_LISTEN:-127.0.0.1:2375}"
catroot="$state/catalogd"
provroot="$state/providerd"

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

# wait_for NAME URL PID LOG: wait up to 10 s for URL to answer.
wait_for() {
  for _ in $(seq 1 100); do
    if curl -fsS "$2" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "$1 exited:"; cat "$4"; exit 1; fi
    sleep 0.1
  done
  echo "$1 did not answer on $2"; cat "$4"; exit 1
}

echo "==> starting catalogd on http://$catalog_listen (log: $state/catalogd.log)"
"$bin/catalogd" serve --root "$catroot" --listen "$catalog_listen" >>"$state/catalogd.log" 2>&1 &
pids+=($!)
wait_for catalogd "http://$catalog_listen/v2/" $! "$state/catalogd.log"

echo "==> starting providerd on http://$provider_listen (log: $state/providerd.log)"
"$bin/providerd" serve --root "$provroot" --listen "$provider_listen" \
  --docker-listen "$docker_listen" \
  --source "catalog=http://$catalog_listen" >>"$state/providerd.log" 2>&1 &
pids+=($!)
wait_for providerd "http://$provider_listen/healthz" $! "$state/providerd.log"

cat <<MSG

catalogd serves the seeded catalog on http://$catalog_listen, and providerd
runs on http://$provider_listen with that catalog as its source (and answers
the docker CLI on tcp://$docker_listen).

Try, in another terminal (cimage talks to providerd on $provider_listen):
  export PATH="$bin:\$PATH"
  cimage find                                   # Find-ContainerImage
  cimage install NanoServer                     # Install-ContainerImage -Name NanoServer
  cimage images                                 # Get-ContainerImage
  cimage install microsoft/iis                  # pulls its parent, WindowsServerCore, first
  cimage remove WindowsServerCore               # refused while microsoft/iis depends on it
  cimage -h                                     # every command
  DOCKER_HOST=tcp://$docker_listen docker images   # the docker CLI, on the same store

catalogd's admin password (for pushes) is in $catroot/auth/admin-password.
Press Ctrl-C to stop both.
MSG
wait
