#!/usr/bin/env bash
# make bench: the benchmarks, each next to its peers and the machine's floor
# in the same run, medians of several runs. Reports are printed and kept in
# bench/results/.
#   blobserve  catalogd serving one 1 GiB blob to 1 and 8 clients, next to
#              the CNCF distribution registry
#   install    providerd installing a 1 GiB image (1 layer, and 4 layers),
#              next to crane pull and skopeo copy, with providerd's peak RSS
#   find       catalogd's find extension at catalog scale (1,000 names × 20
#              versions by default; BENCH_FIND_NAMES=10000 for 200,000), next
#              to the distribution registry's tags/list (filled with
#              BENCH_FIND_REGISTRY_NAMES names, default all), then providerd:
#              the first sync of its index from each, find and install on
#              it, next to a crane catalog + crane ls loop; then a providerd
#              with BENCH_FIND_HOST_IMAGES (10,000) installed images: installs
#              a second with 6 clients, Get by name, the listing, restarts
#              (after more installs up to BENCH_FIND_HOST_RECORDS records of
#              images and jobs, when set);
#              peak RSS of all
#   verify     what a required signature policy adds to installing the
#              seeded WindowsServerCore (BENCH_VERIFY_SIZE base layers,
#              default 256MiB), next to the same install without a policy
#   fleet      1, 2, 4 and 8 providerd hosts installing one BENCH_FLEET_SIZE
#              (1GiB) image at once, directly from catalogd and through the
#              distribution registry as a pull-through cache (cold, then
#              warm, staggered): aggregate MB/s and the bytes catalogd served;
#              BENCH_FLEET_RUNS rounds (3)
# BENCH=blobserve, BENCH=install, BENCH=find, BENCH=verify or BENCH=fleet
# runs one of them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bench/results

scripts/install-tools.sh crane registry skopeo

which=${BENCH:-all}
if [ "$which" = all ] || [ "$which" = blobserve ]; then
  go run ./bench/blobserve --bin bin --tools .tools/bin \
    --size "${BENCH_SIZE:-1GiB}" --runs "${BENCH_RUNS:-5}" --clients "${BENCH_CLIENTS:-1,8}" \
    --out bench/results/blobserve.md
fi
if [ "$which" = all ] || [ "$which" = install ]; then
  go run ./bench/install --bin bin --tools .tools/bin \
    --size "${BENCH_SIZE:-1GiB}" --runs "${BENCH_RUNS:-5}" \
    --out bench/results/install.md
fi
if [ "$which" = all ] || [ "$which" = find ]; then
  go run ./bench/find --bin bin --tools .tools/bin \
    --names "${BENCH_FIND_NAMES:-1000}" --versions "${BENCH_FIND_VERSIONS:-20}" \
    --registry-names "${BENCH_FIND_REGISTRY_NAMES:-0}" --host-images "${BENCH_FIND_HOST_IMAGES:-10000}" \
    --host-records "${BENCH_FIND_HOST_RECORDS:-0}" \
    --out bench/results/find.md
fi
if [ "$which" = all ] || [ "$which" = verify ]; then
  go run ./bench/verify --bin bin --base-layer-size "${BENCH_VERIFY_SIZE:-256MiB}" --runs "${BENCH_RUNS:-7}" \
    --out bench/results/verify.md
fi
if [ "$which" = all ] || [ "$which" = fleet ]; then
  go run ./bench/fleet --bin bin --tools .tools/bin \
    --size "${BENCH_FLEET_SIZE:-1GiB}" --runs "${BENCH_FLEET_RUNS:-3}" --hosts "${BENCH_FLEET_HOSTS:-1,2,4,8}" \
    --out bench/results/fleet.md
fi
