#!/usr/bin/env bash
# The full path, twice in one run: the card on this CPU's fastest kernels (AVX-512 IFMA, GFNI,
# multi-buffer SM3 where the CPU has them), then on its portable paths only
# (`--portable-kernels`, what a CPU without AVX-512 gets), each its own `gmhsm-sim up --demo`
# with gmhsm-bench against it; the raw references are measured by gmhsm-bench in the same run.
# Usage: scripts/bench-fullpath.sh [SECONDS_PER_OP]   (docs/benchmarks.md, "Current results")
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p gmhsm-sim -p gmhsm-loadgen >&2
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; features used:" \
  "$(grep -m1 -ow -E 'avx512ifma' /proc/cpuinfo || echo no-avx512ifma)" \
  "$(grep -m1 -ow -E 'gfni' /proc/cpuinfo || echo no-gfni)" \
  "$(grep -m1 -ow -E 'avx512bw' /proc/cpuinfo || echo no-avx512bw); $(uptime | sed 's/.*load/load/')"
for variant in fastest portable; do
  state=$(mktemp -d -t gmhsm-bench.XXXXXX)
  extra=()
  [ "$variant" = portable ] && extra=(--portable-kernels)   # the card's and the raw references
  "$target/release/gmhsm-sim" up --state "$state" --demo --listen 127.0.0.1:0 "${extra[@]}" >"$state/up.log" 2>&1 &
  top=$!
  for _ in $(seq 1 300); do [ -f "$state/client.toml" ] && break; sleep 0.2; done
  [ -f "$state/client.toml" ] || { cat "$state/up.log" >&2; kill $top; exit 1; }
  card=$(pgrep -P $top -f 'gmhsm-sim card' | head -1)
  echo "## card kernels: $variant"
  "$target/release/gmhsm-bench" --profile "$state/client.toml" --connections 4 --depth 16 --seconds "$secs" \
    --op ping --op sm2-sign --op sm2-sign-batch --op sm2-verify --op sm2-decrypt --op sm2-decrypt-batch \
    --op sm2-keypair --op ecdsa-sign --op ecdsa-sign-batch --op rsa2048-sign --op sm4-gcm64k \
    --batch 32 --appliance-pid $top --appliance-pid "$card" "${extra[@]}"
  "$target/release/gmhsm-bench" --profile "$state/client.toml" --connections 1 --depth 1 --seconds "$secs" \
    --op ping --op sm2-sign --busy-poll-us 200 --no-reference --appliance-pid $top --appliance-pid "$card"
  kill $top; wait $top 2>/dev/null || true
  rm -rf "$state"
done
