#!/usr/bin/env bash
# test-powershell.sh: run the Pester 5 tests of the PowerShell module where
# pwsh is on the PATH; make test runs it after the build.
#
#   scripts/test-powershell.sh [FILE.ps1...]
#
# The files default to scripts/test-powershell.ps1 (the module against real
# daemons) and scripts/ContainerImage.Tests.ps1 (the module with its HTTP
# calls mocked). Without pwsh it prints why it skips and exits 0.
#
# It builds nothing: catalogd and providerd come from $CP_BIN_DIR (default
# ./bin), started by scripts/run.sh as make run starts them (the catalog
# seeded, catalogd, then providerd with it as its source), here on free
# loopback ports, in a temporary directory that is removed on success and
# kept, with the daemons' logs, on failure. The tests reach providerd through
# CONTAINERPROVIDER_ENDPOINT and CONTAINERPROVIDER_TOKEN_FILE.
# CP_PESTER_TIMEOUT (seconds, default 1200) bounds the Pester run.

# The single-quoted strings are PowerShell, whose $variables are its own.
# shellcheck disable=SC2016
set -euo pipefail

if ! command -v pwsh >/dev/null 2>&1; then
  echo "test-powershell: skipped: pwsh is not on the PATH (this machine has no PowerShell); the module is checked here by the static and replay tests only"
  exit 0
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="${CP_BIN_DIR:-$root/bin}"
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(scripts/test-powershell.ps1 scripts/ContainerImage.Tests.ps1)

# fail MESSAGE...: say why the tests cannot run, on stderr, and stop.
fail() {
  echo "test-powershell: $*" >&2
  exit 1
}

for b in catalogd providerd; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing: run make build (or set CP_BIN_DIR)"
done
for p in "${paths[@]}"; do
  [ -f "$p" ] || fail "no such test file: $p"
done

command -v curl >/dev/null 2>&1 || fail "curl is needed to wait for the daemons"

# pwsh_run COMMAND: run a PowerShell command without profile or prompts.
pwsh_run() { pwsh -NoProfile -NonInteractive -Command "$1"; }

# pester_version: the highest Pester 5 or later that pwsh can import, or
# nothing.
pester_version() {
  pwsh_run '$m = Get-Module -ListAvailable -Name Pester | Where-Object { $_.Version -ge [version]"5.0" } | Sort-Object Version -Descending | Select-Object -First 1; if ($m) { $m.Version.ToString() }'
}

version=$(pester_version)
if [ -z "$version" ]; then
  echo "test-powershell: installing Pester 5 for this user (Install-Module Pester -MinimumVersion 5.0 -Scope CurrentUser)"
  pwsh_run 'Install-Module -Name Pester -MinimumVersion 5.0 -Scope CurrentUser -Force -SkipPublisherCheck -ErrorAction Stop' ||
    fail "Pester 5 could not be installed"
  version=$(pester_version)
  [ -n "$version" ] || fail "Pester 5 is still not available after Install-Module"
fi
echo "test-powershell: $(pwsh_run '"PowerShell $($PSVersionTable.PSVersion)"'), Pester $version"

work=$(mktemp -d "${TMPDIR:-/tmp}/cp-pester.XXXXXX")
chmod 755 "$work"
provroot="$work/providerd"
socket="$work/run/providerd.sock"
logs=("$work/run.log" "$work/catalogd.log" "$work/providerd.log")

run_pid=
# stop: end scripts/run.sh, which stops its daemons (TERM, then KILL after
# 10 s), print the logs' tails on failure and keep them, and remove the
# directory on success.
stop() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$run_pid" ]; then
    kill "$run_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$run_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    local log
    for log in "${logs[@]}"; do
      [ -s "$log" ] || continue
      echo "---- last lines of $log" >&2
      tail -n 40 "$log" >&2
    done
    echo "test-powershell: failed (exit $rc); the daemons' roots and logs are kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two free loopback ports, found the way the e2e tests find them: bound to
# port 0, then released.
read -r catalog_port provider_port < <(pwsh_run '$a = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $b = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $a.Start(); $b.Start(); "{0} {1}" -f $a.LocalEndpoint.Port, $b.LocalEndpoint.Port; $a.Stop(); $b.Stop()')
[ -n "${provider_port:-}" ] || fail "pwsh found no free loopback port"
provider="127.0.0.1:$provider_port"

# The daemons as make run starts them (scripts/run.sh: the catalog seeded,
# catalogd, then providerd with it as its source), in $work on these ports.
echo "test-powershell: scripts/run.sh in $work (catalogd on 127.0.0.1:$catalog_port, providerd on http://$provider)"
CP_BIN_DIR="$bin" CP_RUN_STATE="$work" CATALOGD_LISTEN="127.0.0.1:$catalog_port" PROVIDERD_LISTEN="$provider" \
  scripts/run.sh >"$work/run.log" 2>&1 &
run_pid=$!
# run.sh waits for each daemon's health; providerd's on its socket is its last.
for _ in $(seq 1 600); do
  kill -0 "$run_pid" 2>/dev/null || fail "scripts/run.sh stopped before its daemons answered"
  if curl -fsS -o /dev/null --unix-socket "$socket" http://providerd/healthz 2>/dev/null; then break; fi
  sleep 0.1
done
curl -fsS -o /dev/null --unix-socket "$socket" http://providerd/healthz 2>/dev/null || fail "providerd did not answer within 60 s"
[ -s "$provroot/auth/token" ] || fail "providerd made no token at $provroot/auth/token"

export CONTAINERPROVIDER_ENDPOINT="http://$provider"
export CONTAINERPROVIDER_TOKEN_FILE="$provroot/auth/token"
unset CONTAINERPROVIDER_TOKEN CONTAINERPROVIDER_CA_FILE
# The files to run, one a line, for the Pester configuration.
CP_PESTER_PATHS=$(printf '%s\n' "${paths[@]}")
export CP_PESTER_PATHS

pester='Import-Module Pester -MinimumVersion 5.0
$c = New-PesterConfiguration
$c.Run.Path = @($env:CP_PESTER_PATHS -split "`n" | Where-Object { $_ })
$c.Run.Exit = $true
$c.Output.Verbosity = "Detailed"
Invoke-Pester -Configuration $c'

limit="${CP_PESTER_TIMEOUT:-1200}"
echo "test-powershell: Invoke-Pester ${paths[*]} (at most $limit s)"
status=0
if command -v timeout >/dev/null 2>&1; then
  timeout --kill-after=30 "$limit" pwsh -NoProfile -NonInteractive -Command "$pester" || status=$?
else
  pwsh -NoProfile -NonInteractive -Command "$pester" || status=$?
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  fail "Pester did not finish within $limit s"
fi
[ "$status" -eq 0 ] || fail "Pester failed (exit $status)"
echo "test-powershell: ok"
