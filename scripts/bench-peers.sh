#!/usr/bin/env bash
# Peer implementations measured on ONE core, in one run, on this machine, next to OpenSSL 3:
#   GmSSL  (gmssl-pyx 2.1.0 wheel: GmSSL 3.1.x-dev C API, driven by tools/peers/gmssl_bench.c;
#           gmssl-fast 0.1.0 wheel: GmSSL 3.1 behind hidden symbols, driven from Python)
#   Tongsuo 8.3.2 (tongsuopy 1.0.1 wheel, EVP API driven by tools/peers/tongsuo_bench.c)
#   SoftHSM 2.6.1 (Debian softhsm2, PKCS#11 driven by tools/peers/softhsm_bench.c)
#   OpenSSL 3 (`openssl speed`)
# Prints a Markdown table (op, peer, value, unit, what one call includes) for docs/benchmarks.md,
# then the correctness cross-checks (signatures verified and ciphertexts decrypted by the OpenSSL
# CLI, SM4 vectors compared across libraries).
#
# Setup (idempotent): a venv at ${CARGO_TARGET_DIR:-target}/peers-venv with pinned wheels
# (--only-binary :all:); softhsm2 via apt-get only when missing and running as root, otherwise the
# SoftHSM rows are skipped with a loud message. Work files go to ${CARGO_TARGET_DIR:-target}/peers.
# Env: BENCH_SECONDS (per op, default 2), BENCH_CPU (default 1), PEERS_SKIP="gmssl tongsuo
# gmssl-fast softhsm openssl" (any subset). Exit status: 0 unless a harness failed to build or run,
# a call failed, or a cross-check failed; skipped peers do not fail the run (they are listed).
# Runtime: about 2 minutes with the defaults.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
work="$target/peers"
venv="$target/peers-venv"
secs="${BENCH_SECONDS:-2}"
cpu="${BENCH_CPU:-1}"
skip_list=" ${PEERS_SKIP:-} "
export BENCH_SECONDS="$secs"

GMSSL_PYX=2.1.0
GMSSL_FAST=0.1.0
TONGSUOPY=1.0.1

rm -rf "$work/check" && mkdir -p "$work/bin" "$work/check"  # no stale cross-check inputs from an earlier run
log="$work/log.txt"
res="$work/results.tsv"
: >"$log"
: >"$res"
errors=()
skipped=()
err() { echo "ERROR: $*" >&2; errors+=("$*"); }
skip() {
  echo "" >&2
  echo "!!!!!!!! SKIPPED: $*" >&2
  echo "" >&2
  skipped+=("$*")
}
want() { [[ "$skip_list" != *" $1 "* ]]; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=0
apt_install() { # apt_install PKG... (root only)
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$log" 2>&1
}

pin=()
if command -v taskset >/dev/null && taskset -c "$cpu" true 2>/dev/null; then
  pin=(taskset -c "$cpu")
else
  echo "WARNING: taskset -c $cpu unavailable: running unpinned" >&2
fi
for tool in gcc python3 openssl; do
  command -v "$tool" >/dev/null || { err "$tool not on PATH (apt-get install gcc python3 python3-venv openssl)"; }
done
[ "${#errors[@]}" = 0 ] || exit 1

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== peers benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $load_before, pinned to CPU $cpu, ${secs} s per op" >&2

# ---------------------------------------------------------------- venv + wheels
if want gmssl || want gmssl-fast || want tongsuo; then
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >>"$log" 2>&1; then
      rm -rf "$venv"
      if is_root && apt_install python3-venv && python3 -m venv "$venv" >>"$log" 2>&1; then :; else
        err "python3 -m venv failed (apt-get install python3-venv); see $log"
      fi
    fi
  fi
  if [ -x "$venv/bin/python" ]; then
    have() { "$venv/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('$1')!='$2')" 2>/dev/null; }
    need=()
    have gmssl-fast "$GMSSL_FAST" || need+=("gmssl-fast==$GMSSL_FAST")
    have tongsuopy "$TONGSUOPY" || need+=("tongsuopy==$TONGSUOPY")
    have gmssl-pyx "$GMSSL_PYX" || need+=("gmssl-pyx==$GMSSL_PYX")
    for p in "${need[@]}"; do
      "$venv/bin/pip" install -q --disable-pip-version-check --only-binary :all: "$p" >>"$log" 2>&1 \
        || echo "pip install $p failed in the venv (see $log); will try the wheel file directly" >&2
    done
  fi
fi
sitep="$(ls -d "$venv"/lib/python3*/site-packages 2>/dev/null | head -1)"
find_so() { [ -n "$sitep" ] && ls "$sitep"/$1 2>/dev/null | head -1; }
gmssl_so="$(find_so 'gmssl_pyx/gmsslext*.so')"
if want gmssl && [ -z "$gmssl_so" ]; then
  # gmssl-pyx ships cp3xx wheels only; the C harness needs just the .so, whatever the local Python is.
  wd="$work/wheels"
  mkdir -p "$wd"
  if "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary :all: --python-version 3.11 \
       --implementation cp --abi cp311 --platform manylinux2014_x86_64 -d "$wd" "gmssl-pyx==$GMSSL_PYX" >>"$log" 2>&1; then
    python3 -m zipfile -e "$(ls "$wd"/gmssl_pyx-"$GMSSL_PYX"-*.whl | head -1)" "$wd/gmssl_pyx" >>"$log" 2>&1
    gmssl_so="$(ls "$wd"/gmssl_pyx/gmssl_pyx/gmsslext*.so 2>/dev/null | head -1)"
  fi
  [ -n "$gmssl_so" ] || err "gmssl-pyx $GMSSL_PYX wheel unavailable (see $log)"
fi
tongsuo_so="$(find_so 'tongsuopy/backends/_tongsuo*.so')"
want tongsuo && [ -z "$tongsuo_so" ] && err "tongsuopy $TONGSUOPY not installed in $venv (see $log)"

# ---------------------------------------------------------------- build the C harnesses
cflags=(-O2 -Wall -Wextra -I"$root/bench/peers")
build_dl() { # build_dl NAME LIB.so : harness + stubs for the Python symbols the module references
  local name="$1" so="$2"
  {
    echo "/* generated by scripts/bench-peers.sh from nm -D --undefined-only $(basename "$so"); never called */"
    nm -D --undefined-only "$so" | awk '{print $2}' | grep -E '^_?Py' | sed 's/.*/char &[256] __attribute__((aligned(64)));/'
  } >"$work/bin/py_stubs_$name.c"
  gcc "${cflags[@]}" -rdynamic -o "$work/bin/${name}_bench" "$root/bench/peers/${name}_bench.c" \
    "$work/bin/py_stubs_$name.c" -ldl >>"$log" 2>&1 || { err "building ${name}_bench failed (see $log)"; return 1; }
}
run_harness() { # run_harness LABEL CMD... : keeps the tab-separated lines, stderr to the log
  local label="$1"; shift
  echo "-- $label" >&2
  if ! "${pin[@]}" "$@" >"$work/$label.out" 2>>"$log"; then
    err "$label harness exited non-zero (see $work/$label.out and $log)"
  fi
  cat "$work/$label.out" >>"$res"
}

if want gmssl && [ -n "$gmssl_so" ]; then
  if nm -D --defined-only "$gmssl_so" | grep -qw sm2_fast_sign_pre_compute; then
    mkdir -p "$work/check/gmssl"
    build_dl gmssl "$gmssl_so" && run_harness gmssl "$work/bin/gmssl_bench" "$gmssl_so" "$work/check/gmssl"
  else
    err "$gmssl_so does not export GmSSL's C API (sm2_fast_sign_pre_compute): wheel changed?"
  fi
fi
if want tongsuo && [ -n "$tongsuo_so" ]; then
  mkdir -p "$work/check/tongsuo"
  build_dl tongsuo "$tongsuo_so" && run_harness tongsuo "$work/bin/tongsuo_bench" "$tongsuo_so" "$work/check/tongsuo"
fi

# ---------------------------------------------------------------- SoftHSM2
if want softhsm; then
  shlib=/usr/lib/softhsm/libsofthsm2.so
  if [ ! -e "$shlib" ] || ! command -v softhsm2-util >/dev/null; then
    if is_root; then
      echo "installing softhsm2 (apt-get)" >&2
      apt_install softhsm2 || err "apt-get install softhsm2 failed (see $log)"
    fi
  fi
  if [ -e "$shlib" ] && command -v softhsm2-util >/dev/null; then
    tok="$work/softhsm"
    rm -rf "$tok" && mkdir -p "$tok/tokens" "$work/check/softhsm"
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$tok" >"$tok/softhsm2.conf"
    if SOFTHSM2_CONF="$tok/softhsm2.conf" softhsm2-util --init-token --free --label gmhsm-bench \
         --so-pin 87654321 --pin 12345678 >>"$log" 2>&1; then
      gcc "${cflags[@]}" -o "$work/bin/softhsm_bench" "$root/bench/peers/softhsm_bench.c" -ldl >>"$log" 2>&1 \
        && SOFTHSM2_CONF="$tok/softhsm2.conf" run_harness softhsm "$work/bin/softhsm_bench" "$shlib" 12345678 "$work/check/softhsm" \
        || err "building softhsm_bench failed (see $log)"
    else
      err "softhsm2-util --init-token failed (see $log)"
    fi
  else
    skip "SoftHSM2 is not installed and this is not root: run 'apt-get install softhsm2' (as root) and re-run; no SoftHSM rows below"
  fi
fi

# ---------------------------------------------------------------- GmSSL via gmssl-fast (Python)
if want gmssl-fast; then
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import gmssl_fast' 2>/dev/null; then
    cbc="$(awk -F'\t' '$1=="VECTOR" && $2=="sm4-cbc" {print $4; exit}' "$res")"
    gcm="$(awk -F'\t' '$1=="VECTOR" && $2=="sm4-gcm" {print $4; exit}' "$res")"
    echo "-- gmssl-fast" >&2
    "${pin[@]}" "$venv/bin/python" "$root/bench/peers/gmssl_fast_bench.py" ${cbc:+"$cbc"} ${gcm:+"$gcm"} \
      >"$work/gmssl-fast.out" 2>>"$log" || err "gmssl-fast harness exited non-zero (see $work/gmssl-fast.out)"
    cat "$work/gmssl-fast.out" >>"$res"
  else
    skip "gmssl-fast $GMSSL_FAST not importable from $venv (pip needs a CPython >= 3.8 with abi3 wheels): no gmssl-fast rows"
  fi
fi

# ---------------------------------------------------------------- OpenSSL 3
if want openssl; then
  echo "-- openssl speed" >&2
  o="$work/openssl.out"
  osecs="$(python3 -c "import sys; print(max(1, round(float(sys.argv[1]))))" "$secs")"  # speed takes whole seconds
  {
    echo "+VERSION:$(openssl version)"
    "${pin[@]}" openssl speed -mr -elapsed -seconds "$osecs" sm2
    "${pin[@]}" openssl speed -mr -elapsed -seconds "$osecs" rsa2048 ecdsap256
    for c in sm4-cbc sm4-gcm; do
      for n in 64 65536; do
        echo "+CASE:$c:$n"
        "${pin[@]}" openssl speed -mr -elapsed -seconds "$osecs" -evp "$c" -bytes "$n" || echo "+NA"
      done
    done
  } >"$o" 2>>"$log"
  python3 - "$o" >>"$res" <<'PY'
import sys
ver, case, seen = "OpenSSL 3", None, set()
P = lambda: ver.split(" (")[0] + " (openssl speed)"
for line in open(sys.argv[1]):
    p = line.strip().split(":")
    def out(op, v, unit, incl):
        print(f"RESULT\t{op}\t{P()}\t{v:.1f}\t{unit}\t{incl}")
    if p[0] == "+VERSION": ver = p[1]
    elif p[0] == "+F7":
        out("SM2 sign, 32 B msg", float(p[4]), "ops/s", "EVP_DigestSignInit (Z_A, ID 1234567812345678) + EVP_DigestSign (SM3 of speed's short fixed message, fresh k, DER)")
        out("SM2 verify, 32 B msg", float(p[5]), "ops/s", "EVP_DigestVerifyInit (Z_A) + EVP_DigestVerify")
    elif p[0] == "+F2":
        out("RSA-2048 sign (PKCS#1 v1.5, SHA-256), 32 B msg", float(p[3]), "ops/s", "EVP_PKEY_sign of a 36-B value (no hash), PKCS#1 v1.5 padding, CRT")
        out("RSA-2048 verify (PKCS#1 v1.5, SHA-256), 32 B msg", float(p[4]), "ops/s", "EVP_PKEY_verify (no hash)")
    elif p[0] == "+F4":
        out("ECDSA P-256 sign (SHA-256), 32 B msg", float(p[3]), "ops/s", "EVP_PKEY_sign of a 20-B digest (no hash)")
        out("ECDSA P-256 verify (SHA-256), 32 B msg", float(p[4]), "ops/s", "EVP_PKEY_verify (no hash)")
    elif p[0] == "+CASE": case = (p[1], int(p[2]))
    elif p[0] == "+NA" and case:
        print(f"NOTE\t{P()}: {case[0]} is not available (OpenSSL 3.0 has no SM4-GCM; it came in 3.2)" if case[0] == "sm4-gcm" else f"NOTE\t{P()}: {case[0]} failed")
        seen.add(case[0])
    elif p[0] == "+F" and case:
        size = "64 KiB" if case[1] == 65536 else f"{case[1]} B"
        out(f"{case[0].upper()} encrypt, {size}", float(p[3]) / 1e6, "MB/s", "EVP_EncryptUpdate on an initialised ctx, no padding")
PY
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- cross-checks with the OpenSSL CLI
xc() { # xc NAME CMD... : record a cross-check
  local name="$1"; shift
  echo "-- cross-check: $name" >>"$log"
  if "$@" >>"$log" 2>&1; then printf 'CHECK\t%s\tok\t\n' "$name" >>"$res"; else printf 'CHECK\t%s\tFAIL\tsee %s\n' "$name" "$log" >>"$res"; fi
}
sm2_sig_check() { openssl dgst -sm3 -verify "$1/pub.pem" -sigopt distid:1234567812345678 -signature "$1/sig.der" "$1/msg.bin"; }
sm2_dec_check() { openssl pkeyutl -decrypt -inkey "$1/key.pem" -in "$1/ct.der" | cmp -s - "$1/msg.bin"; }
for lib in gmssl tongsuo; do
  d="$work/check/$lib"
  [ -s "$d/sig.der" ] || continue
  xc "openssl verifies a $lib SM2 signature (SM3, ID 1234567812345678)" sm2_sig_check "$d"
  xc "openssl decrypts a $lib SM2 ciphertext" sm2_dec_check "$d"
done
d="$work/check/softhsm"
rsa_check() {
  printf 'asn1=SEQUENCE:k\n[k]\nn=INTEGER:0x%s\ne=INTEGER:0x010001\n' "$(cat "$d/rsa_n.hex")" >"$d/rsa.cnf" &&
  openssl asn1parse -genconf "$d/rsa.cnf" -out "$d/rsa.der" -noout &&
  openssl rsa -RSAPublicKey_in -inform DER -in "$d/rsa.der" -pubout -out "$d/rsa.pem" &&
  openssl dgst -sha256 -verify "$d/rsa.pem" -signature "$d/rsa_sig.bin" "$d/msg.bin"
}
ec_check() {
  local s; s="$(cat "$d/ec_sig.hex")"
  printf 'asn1=SEQUENCE:k\n[k]\na=SEQUENCE:alg\nb=FORMAT:HEX,BITSTRING:%s\n[alg]\no=OID:id-ecPublicKey\nc=OID:prime256v1\n' \
    "$(cat "$d/ec_point.hex")" >"$d/ec.cnf" &&
  openssl asn1parse -genconf "$d/ec.cnf" -out "$d/ec.der" -noout &&
  printf 'asn1=SEQUENCE:s\n[s]\nr=INTEGER:0x%s\ns=INTEGER:0x%s\n' "${s:0:64}" "${s:64:64}" >"$d/ecsig.cnf" &&
  openssl asn1parse -genconf "$d/ecsig.cnf" -out "$d/ecsig.der" -noout &&
  openssl dgst -sha256 -verify "$d/ec.der" -keyform DER -signature "$d/ecsig.der" "$d/msg.bin"
}
[ -s "$d/rsa_n.hex" ] && xc "openssl verifies a SoftHSM RSA-2048 PKCS#1 v1.5 SHA-256 signature" rsa_check
[ -s "$d/ec_point.hex" ] && xc "openssl verifies a SoftHSM ECDSA P-256 SHA-256 signature" ec_check
cbc_ref() { head -c 64 /dev/zero | openssl enc -sm4-cbc -K 0123456789abcdeffedcba9876543210 -iv 00000000000000000000000000000000 -nopad | od -An -tx1 -v | tr -d ' \n'; }
python3 - "$res" "$(cbc_ref 2>>"$log")" >>"$res" <<'PY'
import sys
vec = {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("\t")
    if p[0] == "VECTOR": vec.setdefault(p[1], {})[p[2]] = p[3]
ref = sys.argv[2]
for mode, libs in sorted(vec.items()):
    vals = set(libs.values())
    if mode == "sm4-cbc" and ref: vals.add(ref); libs = dict(libs, openssl=ref)
    ok = len(vals) == 1 and "error" not in vals
    print(f"CHECK\t{mode} of 64 zero bytes agrees across {', '.join(sorted(libs))}\t{'ok' if ok else 'FAIL'}\t")
PY

# ---------------------------------------------------------------- table
python3 - "$res" "$load_before" "$load_after" "$secs" "$cpu" <<'PY'
import sys
res, lb, la, secs, cpu = sys.argv[1:]
rows, checks, notes, failed = [], [], [], []
for line in open(res):
    p = line.rstrip("\n").split("\t")
    if p[0] == "RESULT": rows.append(p[1:])
    elif p[0] == "CHECK": checks.append(p[1:])
    elif p[0] == "NOTE" and p[1] not in notes: notes.append(p[1])
    elif p[0] == "FAILED": failed.append(p[1:])
order = ["SM2 sign, 32 B msg", "SM2 sign pool refill", "SM2 sign, online", "SM2 verify", "SM2 encrypt", "SM2 decrypt",
         "SM2 key generation", "SM4-CBC encrypt, 64 B", "SM4-CBC encrypt, 64 KiB", "SM4-GCM encrypt, 64 B",
         "SM4-GCM encrypt, 64 KiB", "RSA-2048 sign", "RSA-2048 verify", "ECDSA P-256 sign", "ECDSA P-256 verify", "random"]
def key(r):
    return (next((i for i, o in enumerate(order) if r[0].startswith(o)), len(order)), r[0])
rows.sort(key=key)
print()
print(f"Peers, one core (taskset -c {cpu}), {secs} s per op, load average {lb} before / {la} after")
print()
print("| op | peer | value | unit | what one call includes |")
print("|---|---|---:|---|---|")
for op, peer, v, unit, incl in rows:
    print(f"| {op} | {peer} | {float(v):,.0f} | {unit} | {incl.replace('||', '‖').replace('|', '&#124;')} |")
for f in failed:
    print(f"| {f[0]} | {f[1]} | FAILED | | {f[2]} |")
print()
for n in notes: print(f"- {n}")
print()
print("Cross-checks:")
for name, st, detail in checks:
    print(f"- [{st}] {name}" + (f" ({detail})" if st != "ok" and detail else ""))
PY

echo
if [ "${#skipped[@]}" -gt 0 ]; then
  echo "SKIPPED PEERS:"
  for s in "${skipped[@]}"; do echo "  !!! $s"; done
fi
bad_checks="$(awk -F'\t' '($1=="CHECK" && $3=="FAIL") || $1=="FAILED"' "$res" | wc -l)"
[ "$bad_checks" = 0 ] || errors+=("$bad_checks cross-check(s) or call(s) failed")
if [ "${#errors[@]}" -gt 0 ]; then
  echo "ERRORS:"
  for e in "${errors[@]}"; do echo "  $e"; done
  echo "(raw lines: $res; log: $log)"
  exit 1
fi
echo "(raw lines: $res; log: $log)"
