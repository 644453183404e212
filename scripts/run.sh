#!/usr/bin/env bash
# make run: start catalogd on loopback with embedded defaults, seeding its
# catalog on first run, and print what to type next. Ctrl-C stops it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
state="$root/.run"
listen="${CATALOGD_LISTEN:-127.0.0.1:5000}"
catroot="$state/catalogd"

mkdir -p "$state"
if [ ! -d "$catroot" ]; then
  echo "==> first run: seeding the catalog in $catroot"
  "$bin/catalogd" seed --root "$catroot"
fi

echo "==> starting catalogd on http://$listen (log: $state/catalogd.log)"
"$bin/catalogd" serve --root "$catroot" --listen "$listen" >"$state/catalogd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; echo; echo "==> stopped"' EXIT INT TERM

for _ in $(seq 1 100); do
  if curl -fsS "http://$listen/v2/" >/dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then
    echo "catalogd exited:"; cat "$state/catalogd.log"; exit 1
  fi
  sleep 0.1
done

cat <<MSG

catalogd is serving the seeded catalog on http://$listen.
Push and delete need the admin credentials created on first start:
  user admin, password in $catroot/auth/admin-password

Try, in another terminal:
  curl -s 'http://$listen/v2/_find' | python3 -m json.tool          # Find-ContainerImage
  curl -s 'http://$listen/v2/_find?name=nano*&allVersions=true'     # -Name nano* -AllVersions
  curl -s 'http://$listen/v2/_find?minimumVersion=10.0.14393.0'     # -MinimumVersion
  curl -s 'http://$listen/v2/_catalog'                              # every repository
  .tools/bin/crane manifest --insecure $listen/nanoserver:10.0.14393.0   # any OCI client works
                                                                     # (make tools installs crane)
Press Ctrl-C to stop.
MSG
wait $pid
