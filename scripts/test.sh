#!/usr/bin/env bash
# The whole gmhsm test suite: installs what the tests need, builds every binary, runs every test.
# Usage: scripts/test.sh   (as root on a fresh Debian machine, or as a user with the tools present)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The Python client (clients/python, 3.11+ for tomllib) runs in tests/tests/e2e_python.rs.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# Admin cards through the real PC/SC stack: pcscd + the vpcd virtual reader (sim tests).
PATH="$PATH:/usr/sbin:/sbin"
VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
command -v pcscd >/dev/null 2>&1 || need_apt+=(pcscd)
[ -e "$VPCD_DRIVER" ] || need_apt+=(vsmartcard-vpcd)
command -v pcsc_scan >/dev/null 2>&1 || need_apt+=(pcsc-tools)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists libpcsclite 2>/dev/null || need_apt+=(libpcsclite-dev)
# The board's TPM backend (gmhsm-board): tss-esapi links tpm2-tss; its tests run against swtpm.
pkg-config --exists tss2-esys 2>/dev/null || need_apt+=(libtss2-dev)
command -v swtpm >/dev/null 2>&1 || need_apt+=(swtpm swtpm-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "test.sh: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# Start pcscd (with vpcd) unless one is running; stop it on exit if we started it. Ready when
# it logs that vpcd listens -- never probe the port: the first connection becomes the card.
PCSCD_PID=
PCSCD_LOG=
stop_pcscd() {
  if [ -n "$PCSCD_PID" ]; then kill "$PCSCD_PID" 2>/dev/null; wait "$PCSCD_PID" 2>/dev/null || true; fi
  if [ -n "$PCSCD_LOG" ]; then rm -f "$PCSCD_LOG"; fi
}
trap stop_pcscd EXIT
if ! { [ -S /run/pcscd/pcscd.comm ] && pgrep -x pcscd >/dev/null 2>&1; }; then
  PCSCD_LOG=$(mktemp -t gmhsm-pcscd.XXXXXX)
  pcscd -f -d -a >"$PCSCD_LOG" 2>&1 &
  PCSCD_PID=$!
  for _ in $(seq 1 100); do
    grep -q "Waiting for virtual ICC on port 35963" "$PCSCD_LOG" && break
    kill -0 "$PCSCD_PID" 2>/dev/null || { echo "test.sh: pcscd exited:" >&2; cat "$PCSCD_LOG" >&2; exit 1; }
    sleep 0.1
  done
  grep -q "Waiting for virtual ICC on port 35963" "$PCSCD_LOG" || { echo "test.sh: pcscd/vpcd not ready" >&2; exit 1; }
fi

# On a CPU with AVX-512 IFMA the IFMA kernels (RSA, the SM2/P-256 comb) must be tested, not
# skipped with "NOT TESTED": their tests fail instead of skipping when this is set.
if grep -qw avx512ifma /proc/cpuinfo 2>/dev/null; then
  export GMHSM_REQUIRE_IFMA=1
fi
# Likewise the multi-buffer SM3 (gmhsm-sm3x) on a CPU with AVX-512 F and BW.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null && grep -qw avx512bw /proc/cpuinfo 2>/dev/null; then
  export GMHSM_REQUIRE_AVX512=1
fi

# The board's device tests (gmhsm-board) run against the real /dev/hwrng and a swtpm the tests
# start: where those exist they must run, not print "NOT TESTED".
if [ -r /dev/hwrng ]; then
  export GMHSM_REQUIRE_HWRNG=1
fi
export GMHSM_REQUIRE_SWTPM=1

# The daemon never links the card's firmware: its tests take the real card (gmhsm-card's
# InProcessCard) only as a dev-dependency.
if cargo tree -p gmhsm-daemon -e normal --prefix none --locked --features pcsc | grep -E '^gmhsm-(firmware|card|sim) '; then
  echo "test.sh: gmhsm-daemon links the card's firmware (cargo tree -p gmhsm-daemon -e normal)" >&2
  exit 1
fi

cargo build --workspace --bins --locked --features gmhsm-sim/pcsc,gmhsm-daemon/pcsc
cargo test --workspace --locked --features gmhsm-sim/pcsc,gmhsm-daemon/pcsc "$@"

# The Debian package: build it, install it into a scratch root, verify its units, boot its
# binaries (docs/deploy.md, "Building and testing the package").
scripts/test-package.sh
