#!/usr/bin/env bash
# The package test (run by scripts/test.sh after the cargo tests, or alone): builds the Debian
# package with scripts/package.sh, checks its contents and control data, installs it into a
# scratch root (dpkg -x), runs systemd-analyze verify on the installed units and
# systemd-sysusers on the installed sysusers file, then boots the installed binaries: the
# installed gmhsmd relays one SM2 signature from the installed gmhsm CLI to a card.
# Prints one line "package test: PASS ..." or "package test: FAIL: why" and exits accordingly.
#
# Needs the workspace's debug gmhsm-sim (scripts/test.sh builds it): its simulated panel runs
# the demo's init ceremony on the installed gmhsm-card (`gmhsm-sim up --card-socket`).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PATH="$PATH:/usr/sbin:/sbin"

fail() {
  echo "package test: FAIL: $*"
  exit 1
}

# Tools: systemd-analyze and systemd-sysusers come with the systemd package; dpkg-deb with dpkg.
need_apt=()
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v readelf >/dev/null 2>&1 || need_apt+=(binutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})"
  echo "test-package.sh: installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v dpkg-deb >/dev/null 2>&1 || fail "dpkg-deb not found (it comes with dpkg)"

SIM="${CARGO_TARGET_DIR:-$REPO/target}/debug/gmhsm-sim"
[ -x "$SIM" ] || fail "$SIM not built (cargo build -p gmhsm-sim --bins)"

TMP=$(mktemp -d -t gmhsm-package.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# wait_for SECONDS PID LOG WHAT TEST...: until TEST succeeds; fails if PID exits first or the
# time runs out, with the end of LOG.
wait_for() {
  local secs=$1 pid=$2 log=$3 what=$4
  shift 4
  for _ in $(seq 1 $((secs * 10))); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || fail "$what exited: $(tail -5 "$log")"
    sleep 0.1
  done
  fail "$what not ready within $secs s: $(tail -5 "$log")"
}

version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml","rb"))["workspace"]["package"]["version"])')

# 1. Build. Without a gmhsm-card binary the real package must be refused, with the reason.
has_card=$(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
print("yes" if any(t["name"] == "gmhsm-card" and "bin" in t["kind"] for p in m["packages"] for t in p["targets"]) else "no")')
if [ "$has_card" = yes ]; then
  deb=$(scripts/package.sh | tail -1) || fail "scripts/package.sh failed"
  [ "$deb" = "$REPO/target/debian/gmhsm_${version}_amd64.deb" ] || fail "package.sh wrote $deb"
else
  if scripts/package.sh >"$TMP/refused.out" 2>&1; then
    fail "scripts/package.sh built a package without gmhsm-card"
  fi
  grep -q "no gmhsm-card binary" "$TMP/refused.out" || fail "package.sh refused without saying why: $(cat "$TMP/refused.out")"
  deb=$(scripts/package.sh --allow-missing-card | tail -1) || fail "scripts/package.sh --allow-missing-card failed"
  [ "$deb" = "$REPO/target/debian/gmhsm_${version}_amd64-without-card.deb" ] || fail "package.sh wrote $deb"
fi
[ -f "$deb" ] || fail "no package at $deb"

# 2. Control data and contents.
info=$(dpkg-deb -I "$deb")
for field in "Package: gmhsm" "Version: $version" "Architecture: amd64" "Depends: .*libc6 (>= "; do
  grep -q "^ $field" <<<"$info" || fail "dpkg-deb -I: no '$field'"
done
for script in postinst prerm postrm conffiles md5sums control; do
  grep -qw "$script" <<<"$info" || fail "dpkg-deb -I: no $script"
done
dpkg-deb -e "$deb" "$TMP/control"
for script in postinst prerm postrm; do
  sh -n "$TMP/control/$script" || fail "$script is not valid sh"
done
expected_conffiles=/etc/gmhsm/gmhsmd.toml
[ -f board/appliance.example.toml ] && expected_conffiles+=$'\n'/etc/gmhsm/appliance.toml
[ "$(cat "$TMP/control/conffiles")" = "$expected_conffiles" ] || fail "conffiles: $(cat "$TMP/control/conffiles")"

contents=$(dpkg-deb -c "$deb")
bins=(gmhsmd gmhsm)
[ "$has_card" = yes ] && bins+=(gmhsm-card)
expected=(./lib/systemd/system/gmhsm-card.service ./lib/systemd/system/gmhsmd.service
  ./usr/lib/sysusers.d/gmhsm.conf ./lib/udev/rules.d/60-gmhsm.rules ./etc/gmhsm/gmhsmd.toml
  ./usr/share/doc/gmhsm/copyright ./usr/share/doc/gmhsm/changelog.gz ./usr/share/doc/gmhsm/deploy.md)
for b in "${bins[@]}"; do
  grep -qE "^-rwxr-xr-x root/root .* \./usr/bin/$b\$" <<<"$contents" || fail "dpkg-deb -c: ./usr/bin/$b missing or not 0755 root/root"
done
for f in "${expected[@]}"; do
  grep -qE "root/root .* ${f//./\\.}\$" <<<"$contents" || fail "dpkg-deb -c: $f missing"
done
if [ "$has_card" = no ] && grep -q "usr/bin/gmhsm-card" <<<"$contents"; then
  fail "a gmhsm-card in a package built without one"
fi

# 3. Install into a scratch root.
ROOT="$TMP/root"
dpkg -x "$deb" "$ROOT"
cmp -s "$ROOT/etc/gmhsm/gmhsmd.toml" daemon/gmhsmd.example.toml || fail "installed gmhsmd.toml differs from daemon/gmhsmd.example.toml"
for b in "${bins[@]}"; do
  [ -x "$ROOT/usr/bin/$b" ] || fail "$ROOT/usr/bin/$b not executable"
  if readelf -S "$ROOT/usr/bin/$b" | grep -q '\.debug_info'; then fail "/usr/bin/$b still has debug info"; fi
done
# The service user, as systemd-sysusers creates it from the installed file.
mkdir -p "$ROOT/etc"
systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/gmhsm.conf" >/dev/null 2>&1 || fail "systemd-sysusers refused gmhsm.conf"
grep -qE '^gmhsm:x:[0-9]+:[0-9]+:gmhsm appliance:/var/lib/gmhsm:/usr/sbin/nologin$' "$ROOT/etc/passwd" ||
  fail "sysusers made no gmhsm user: $(cat "$ROOT/etc/passwd" 2>/dev/null)"

# 4. systemd-analyze verify on the installed units, inside the scratch root: it gets the
# host's own units (sysinit.target, ...) and kill (ExecReload) beside the package's files.
# Any output (an unknown key is only a warning) fails the test.
for f in /lib/systemd/system/*; do
  [ -e "$ROOT/lib/systemd/system/$(basename "$f")" ] || cp -a "$f" "$ROOT/lib/systemd/system/"
done
mkdir -p "$ROOT/bin"
cp "$(type -P kill)" "$ROOT/bin/kill"
units=("$ROOT/lib/systemd/system/gmhsmd.service")
[ "$has_card" = yes ] && units+=("$ROOT/lib/systemd/system/gmhsm-card.service")
if ! verify=$(systemd-analyze verify --root="$ROOT" "${units[@]}" 2>&1) || [ -n "$verify" ]; then
  fail "systemd-analyze verify: $verify"
fi
if [ "$has_card" = no ]; then
  # The card's unit is right but for its binary: verify says exactly that.
  verify=$(systemd-analyze verify --root="$ROOT" "$ROOT/lib/systemd/system/gmhsm-card.service" 2>&1) || true
  [ "$verify" = "gmhsm-card.service: Command /usr/bin/gmhsm-card is not executable: No such file or directory" ] ||
    fail "systemd-analyze verify gmhsm-card.service: $verify"
fi
# systemd's own rating of the sandbox (0 = most confined, 10 = none): at most 2.0 for each unit
# (today gmhsm-card 0.6, gmhsmd 1.5: it must reach the network).
for unit in gmhsm-card.service gmhsmd.service; do
  rating=$(systemd-analyze security --offline=yes --threshold=20 --root="$ROOT" "$unit" 2>&1) ||
    fail "systemd-analyze security $unit: exposure above 2.0: $(grep Overall <<<"$rating")"
done

# The installed gmhsm-card runs, and takes every flag its unit passes it.
if [ "$has_card" = yes ]; then
  card_help=$("$ROOT/usr/bin/gmhsm-card" --help 2>&1) || fail "installed gmhsm-card --help: $card_help"
  exec_start=$(sed -n 's/^ExecStart=//p' "$ROOT/lib/systemd/system/gmhsm-card.service")
  while read -r flag; do
    grep -q -- "$flag" <<<"$card_help" || fail "gmhsm-card.service passes $flag, which gmhsm-card --help does not list"
  done < <(grep -o -- '--[a-z-]*' <<<"$exec_start")
fi

# The installed gmhsm-card boots on the board's Linux devices: the real /dev/hwrng, a flash
# file (O_DIRECT), the master key sealed to a swtpm, an RTC directory standing in for sysfs.
# A new card comes up in the factory state, waiting for the init ceremony.
if [ "$has_card" = yes ]; then
  command -v swtpm >/dev/null 2>&1 || fail "swtpm not found (apt-get install swtpm swtpm-tools)"
  [ -r /dev/hwrng ] || fail "/dev/hwrng not readable: the installed card's noise source"
  tpm_port=$(python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass')
  mkdir -p "$TMP/tpm" "$TMP/rtc" "$TMP/card-run"
  swtpm socket --tpm2 --server "type=tcp,port=$tpm_port,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$((tpm_port + 1)),bindaddr=127.0.0.1" --flags not-need-init,startup-clear \
    --tpmstate "dir=$TMP/tpm" >"$TMP/swtpm.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $tpm_port), 1).close()" 2>/dev/null && break
    sleep 0.1
  done
  date +%s >"$TMP/rtc/since_epoch"
  cat >"$TMP/appliance.toml" <<EOF
[flash]
backend = "file"
path = "$TMP/card-flash.img"
[tamper]
backend = "tpm"
tcti = "swtpm:host=127.0.0.1,port=$tpm_port"
[clock]
rtc = "$TMP/rtc"
EOF
  "$ROOT/usr/bin/gmhsm-card" --config "$TMP/appliance.toml" --socket "$TMP/card-run/card.sock" >"$TMP/gmhsm-card.log" 2>&1 &
  card_pid=$!
  PIDS+=("$card_pid")
  wait_for 60 "$card_pid" "$TMP/gmhsm-card.log" "installed gmhsm-card" test -S "$TMP/card-run/card.sock"
  grep -q "factory state, waiting for the init ceremony" "$TMP/gmhsm-card.log" ||
    fail "installed gmhsm-card did not boot to the factory state: $(tail -5 "$TMP/gmhsm-card.log")"
  [ -s "$TMP/card-flash.img" ] || fail "installed gmhsm-card created no flash file"
fi

# 5. Boot. As the units run them: the card and the daemon started as one unprivileged user
# (here nobody, standing in for gmhsm), so gmhsmd's own privilege drop has nothing to do. The
# installed gmhsm-card (when the package has it) serves on the same Linux devices as above,
# its noise through a FIFO that root fills from /dev/hwrng (the package's udev rule gives the
# gmhsm group the device; nobody has no such rule here); the demo's init ceremony at the
# simulated panel (`gmhsm-sim up --demo --card-socket`) initializes it, then the installed
# gmhsmd serves it. Without gmhsm-card, the simulator's card process stands in.
STATE="$TMP/state"
RUN="$TMP/run"
mkdir -p "$RUN"
as_service=()
if [ "$(id -u)" = 0 ]; then
  as_service=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
if [ "$has_card" = yes ]; then
  kill -TERM "$card_pid" 2>/dev/null || true
  wait "$card_pid" 2>/dev/null || true
  mkfifo "$TMP/noise.fifo"
  sed -e "s|^\[flash\]|[noise]\npath = \"$TMP/noise.fifo\"\n[flash]|" "$TMP/appliance.toml" >"$TMP/appliance-run.toml"
  if [ "$(id -u)" = 0 ]; then
    chmod 0755 "$TMP"
    chown nobody:nogroup "$TMP/card-flash.img" "$TMP/noise.fifo" "$RUN" "$TMP/appliance-run.toml"
  fi
  (cat /dev/hwrng >"$TMP/noise.fifo" 2>/dev/null || true) &
  PIDS+=("$!")
  "${as_service[@]}" "$ROOT/usr/bin/gmhsm-card" --config "$TMP/appliance-run.toml" --socket "$RUN/card.sock" \
    >"$TMP/card.log" 2>&1 &
  card_pid=$!
  PIDS+=("$card_pid")
  wait_for 60 "$card_pid" "$TMP/card.log" "installed gmhsm-card (unprivileged)" test -S "$RUN/card.sock"
  "$SIM" up --state "$STATE" --listen 127.0.0.1:0 --demo --card-socket "$RUN/card.sock" >"$TMP/sim-up.log" 2>&1 &
  sim_pid=$!
  PIDS+=("$sim_pid")
  wait_for 180 "$sim_pid" "$TMP/sim-up.log" "gmhsm-sim up --demo --card-socket" test -f "$STATE/client.toml"
  cp "$STATE/client.toml" "$TMP/demo-client.toml"
  kill -TERM "$sim_pid"
  wait "$sim_pid" || fail "gmhsm-sim up did not stop cleanly"
  kill -0 "$card_pid" 2>/dev/null || fail "installed gmhsm-card stopped with the simulator: $(tail -5 "$TMP/card.log")"
  grep -q "card: listening" "$TMP/card.log" || fail "installed gmhsm-card: $(tail -5 "$TMP/card.log")"
  [ "$(id -u)" = 0 ] && chmod 0755 "$STATE" "$STATE/pki"
else
  "$SIM" up --state "$STATE" --listen 127.0.0.1:0 --demo >"$TMP/sim-up.log" 2>&1 &
  sim_pid=$!
  PIDS+=("$sim_pid")
  wait_for 120 "$sim_pid" "$TMP/sim-up.log" "gmhsm-sim up --demo" test -f "$STATE/client.toml"
  # (gmhsm-sim removes its client profile when it stops: keep a copy.)
  cp "$STATE/client.toml" "$TMP/demo-client.toml"
  kill -TERM "$sim_pid"
  wait "$sim_pid" || fail "gmhsm-sim up did not stop cleanly"
  if [ "$(id -u)" = 0 ]; then
    chmod 0755 "$TMP" "$STATE" "$STATE/pki"
    chown -R nobody:nogroup "$STATE/card" "$RUN"
  fi
  "${as_service[@]}" "$SIM" card --state "$STATE/card" --socket "$RUN/card.sock" >"$TMP/card.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 600); do
    [ -S "$RUN/card.sock" ] && break
    sleep 0.1
  done
  [ -S "$RUN/card.sock" ] || fail "the card did not open its socket: $(tail -5 "$TMP/card.log")"
fi

# The installed default configuration, with only the paths and the port of this test changed.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|^listen = .*|listen = \"127.0.0.1:$port\"|" \
  -e "s|^client_ca = .*|client_ca = \"$STATE/pki/ca.pem\"|" \
  -e "s|^applications = .*|applications = \"$STATE/applications\"|" \
  -e "s|^card_socket = .*|card_socket = \"$RUN/card.sock\"|" \
  -e "s|^cert = \"/etc/gmhsm/tls-|cert = \"$STATE/pki/tls-|" \
  -e "s|^path = \"/run/gmhsm/gmhsmd.sock\"|path = \"$RUN/gmhsmd.sock\"|" \
  "$ROOT/etc/gmhsm/gmhsmd.toml" >"$TMP/gmhsmd.toml"
"${as_service[@]}" "$ROOT/usr/bin/gmhsmd" --config "$TMP/gmhsmd.toml" >"$TMP/gmhsmd.log" 2>&1 &
daemon_pid=$!
PIDS+=("$daemon_pid")
for _ in $(seq 1 300); do
  grep -q "event=harden" "$TMP/gmhsmd.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "installed gmhsmd exited: $(tail -5 "$TMP/gmhsmd.log")"
  sleep 0.1
done
grep -q "event=harden" "$TMP/gmhsmd.log" || fail "installed gmhsmd did not harden within 30 s: $(tail -5 "$TMP/gmhsmd.log")"
sleep 0.5
kill -0 "$daemon_pid" 2>/dev/null || fail "installed gmhsmd died after hardening: $(tail -3 "$TMP/gmhsmd.log")"
grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$daemon_pid/status" || fail "installed gmhsmd: no NoNewPrivs"
grep -q "^Seccomp:[[:space:]]*2" "/proc/$daemon_pid/status" || fail "installed gmhsmd: no seccomp filter"
grep -q "event=harden .*uid=unchanged seccomp=Errno" "$TMP/gmhsmd.log" ||
  fail "installed gmhsmd, started unprivileged, did not report uid=unchanged seccomp=Errno: $(grep event=harden "$TMP/gmhsmd.log")"

sed -e "s|^address = .*|address = \"127.0.0.1:$port\"|" "$TMP/demo-client.toml" >"$TMP/client.toml"
cli() { "$ROOT/usr/bin/gmhsm" --profile "$TMP/client.toml" "$@"; }
msg="$TMP/msg.txt"
printf 'package test: one SM2 signature through the installed binaries\n' >"$msg"
cli key generate --alg sm2 --label pkg-sm2 >"$TMP/cli.log" 2>&1 || fail "gmhsm key generate: $(cat "$TMP/cli.log")"
cli key export --label pkg-sm2 --pem >"$TMP/pub.pem" 2>"$TMP/cli.log" || fail "gmhsm key export: $(cat "$TMP/cli.log")"
cli sign --label pkg-sm2 --in "$msg" --out "$TMP/msg.sig" >"$TMP/cli.log" 2>&1 || fail "gmhsm sign: $(cat "$TMP/cli.log")"
openssl dgst -sm3 -sigopt distid:1234567812345678 -verify "$TMP/pub.pem" -signature "$TMP/msg.sig" "$msg" >"$TMP/openssl.log" 2>&1 ||
  fail "OpenSSL does not verify the SM2 signature: $(cat "$TMP/openssl.log")"
printf 'other\n' >"$TMP/other.txt"
if openssl dgst -sm3 -sigopt distid:1234567812345678 -verify "$TMP/pub.pem" -signature "$TMP/msg.sig" "$TMP/other.txt" >/dev/null 2>&1; then
  fail "OpenSSL verified the signature over other data"
fi

[ "$(grep -c "event=auth" "$TMP/gmhsmd.log")" -ge 3 ] || fail "the CLI's requests did not pass the installed gmhsmd"

if [ "$has_card" = yes ]; then
  echo "package test: PASS ($(basename "$deb"): contents, conffiles, sysusers, systemd-analyze verify of both units; installed gmhsm-card takes its unit's flags and boots on /dev/hwrng + a flash file + swtpm to the factory state; initialized at the simulated panel, it signs: installed gmhsm -> installed gmhsmd -> installed gmhsm-card, both unprivileged)"
else
  echo "package test: PASS ($(basename "$deb"), built WITHOUT gmhsm-card: contents, conffiles, sysusers, systemd-analyze verify; one SM2 signature installed gmhsm -> installed gmhsmd -> gmhsm-sim card)"
  echo "package test: NOT TESTED: gmhsm-card (no gmhsm-card binary in the workspace yet): the real package, its unit's binary, the installed card runtime" >&2
fi
