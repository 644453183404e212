#!/usr/bin/env bash
# make demo: replay the reference documentation's session end to end against
# a fresh catalogd and providerd on free loopback ports, and print it as a
# transcript. Everything it creates lives in a temporary directory that is
# removed at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# wait_for URL [CURL ARGS...]: wait up to 10 s for URL to answer 200.
wait_for() {
  local url=$1; shift
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0; sleep 0.1; done
  echo "no answer on $url"; exit 1
}

cat_addr="127.0.0.1:$(free_port)"
prov_addr="127.0.0.1:$(free_port)"
"$bin/catalogd" seed --root "$work/catalogd" >/dev/null
"$bin/catalogd" serve --root "$work/catalogd" --listen "$cat_addr" >"$work/catalogd.log" 2>&1 &
pids+=($!)
wait_for "http://$cat_addr/healthz"
"$bin/providerd" serve --root "$work/providerd" --run-dir "$work/run" --listen "$prov_addr" --source "catalog=http://$cat_addr" >"$work/providerd.log" 2>&1 &
pids+=($!)
wait_for "http://providerd/healthz" --unix-socket "$work/run/providerd.sock"
export CIMAGE_ENDPOINT="unix://$work/run/providerd.sock"

# say CMDLET -- COMMAND...: print the cmdlet the command stands for, then run it.
say() {
  local cmdlet=$1; shift 2
  printf '\nPS C:\\> %s\n$ cimage %s\n' "$cmdlet" "$*"
  "$bin/cimage" "$@" || true
}

say "Find-ContainerImage" -- find
say "Install-ContainerImage -Name NanoServer -Version 10.0.10586.0" -- install NanoServer --version 10.0.10586.0 --quiet
say "Get-ContainerImage" -- images
say "Install-ContainerImage -Name microsoft/iis   # pulls WindowsServerCore first" -- install microsoft/iis
say "Get-ContainerImage" -- images
say "Get-ContainerImage -ChildOf WindowsServerCore" -- images --child-of WindowsServerCore
say "Remove-ContainerImage -Name WindowsServerCore   # refused: microsoft/iis depends on it" -- remove WindowsServerCore
say "Remove-ContainerImage -Name microsoft/iis" -- remove microsoft/iis
say "Remove-ContainerImage -Name WindowsServerCore" -- remove WindowsServerCore
say "Get-ContainerImage" -- images

printf '<h1>Hello from a container image</h1>\n' >"$work/index.html"
say "New-Container -ContainerImageName NanoServer -Name web1" -- container create NanoServer --name web1
say "Copy-Item index.html into web1:C:\\inetpub\\wwwroot" -- container cp "$work/index.html" web1:/inetpub/wwwroot
say "Stop-Container web1" -- container stop web1
say "Get-Container" -- container list
say "New-ContainerImage -Container web1 -Publisher Demo -Name DemoImage -Version 1.0" -- new --container web1 --publisher Demo --name DemoImage --version 1.0
say "Get-ContainerImage" -- images
say "Get-ContainerImage | select Name, ParentImage" -- images --parent
say "Remove-ContainerImage -Name NanoServer   # refused: web1 and DemoImage depend on it" -- remove NanoServer
say "Save-ContainerImage -Name DemoImage -Path $work" -- save DemoImage --path "$work/"
say "Remove-Container web1" -- container rm web1
say "Remove-ContainerImage -Name DemoImage" -- remove DemoImage
say "Install-ContainerImage -Path $work/DemoImage-1-0-0-0.tar" -- install --path "$work/DemoImage-1-0-0-0.tar"
say "Get-ContainerImage" -- images
echo
