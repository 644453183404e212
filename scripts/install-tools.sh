#!/usr/bin/env bash
# Installs the third-party tools that the interop checks and benchmarks use:
# Go programs by name from the Go module proxy into .tools/bin (a tool
# already present at the pinned version is not reinstalled), and skopeo
# from Debian's packages with apt-get (as root, or through sudo), and the
# tree-sitter PowerShell grammar from npm into .tools/npm (the syntax check
# of scripts/check-powershell.mjs), and Mono's C# compiler and runtime from
# Debian's packages (the check of the module's C#, ContainerProvider.Tls.cs).
#
# Usage: scripts/install-tools.sh [crane] [oras] [conformance] [registry] [cosign] [skopeo] [powershell-grammar] [mono]
# With no arguments it installs everything make test needs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

declare -A pkgs=(
  [crane]="github.com/google/go-containerregistry/cmd/crane@v0.22.1"
  [oras]="oras.land/oras/cmd/oras@v1.3.6"
  [conformance]="github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"
  [registry]="github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
  [cosign]="github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3"
)

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(crane oras conformance registry cosign skopeo powershell-grammar mono)

# apt_install PACKAGE...: install Debian packages, as root or through sudo.
apt_install() {
  echo "install-tools: apt-get install $*"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

for t in "${tools[@]}"; do
  if [ "$t" = skopeo ]; then
    command -v skopeo >/dev/null 2>&1 || apt_install skopeo
    continue
  fi
  if [ "$t" = mono ]; then
    { command -v mcs && command -v mono && [ -e /usr/lib/mono/4.5/System.Net.Http.dll ]; } >/dev/null 2>&1 ||
      apt_install mono-mcs mono-runtime libmono-system-net-http4.0-cil
    continue
  fi
  if [ "$t" = powershell-grammar ]; then
    if [ ! -d "$root/.tools/npm/node_modules/tree-sitter-powershell" ]; then
      command -v npm >/dev/null 2>&1 || apt_install nodejs npm
      echo "install-tools: npm install tree-sitter tree-sitter-powershell"
      mkdir -p "$root/.tools/npm"
      npm install --no-save --no-audit --no-fund --prefix "$root/.tools/npm" tree-sitter tree-sitter-powershell
    fi
    continue
  fi
  pkg=${pkgs[$t]:-}
  if [ -z "$pkg" ]; then
    echo "install-tools: unknown tool $t" >&2
    exit 2
  fi
  stamp="$bin/.$t.version"
  if [ -x "$bin/$t" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg" ]; then
    continue
  fi
  echo "install-tools: go install $pkg"
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$pkg"
  echo "$pkg" >"$stamp"
done
