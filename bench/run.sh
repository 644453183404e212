#!/usr/bin/env bash
# make bench: catalogd serving one 1 GiB blob to 1 and 8 clients, next to the
# CNCF distribution registry and the machine's floor, medians of 5 runs.
# The report is printed and kept in bench/results/blobserve.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bench/results
go run ./bench/blobserve --bin bin --tools .tools/bin \
  --size "${BENCH_SIZE:-1GiB}" --runs "${BENCH_RUNS:-5}" --clients "${BENCH_CLIENTS:-1,8}" \
  --out bench/results/blobserve.md
