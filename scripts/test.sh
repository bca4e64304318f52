#!/usr/bin/env bash
# The whole gmhsm test suite: installs what the tests need, builds every binary, runs every test.
# Usage: scripts/test.sh   (as root on a fresh Debian machine, or as a user with the tools present)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "test.sh: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
