#!/usr/bin/env bash
# One-core throughput of the card's primitives next to OpenSSL 3 on this machine.
# Runs `cargo bench -p gmhsm-firmware --bench primitives` (criterion, short runs), then
# `openssl speed`, and prints ops/s (or MB/s) side by side with the ratio ours / OpenSSL.
# Numbers are noisy while other builds run: check `uptime` and run when the load is low.
# Usage: scripts/bench-primitives.sh [--skip-cargo] [--skip-openssl]
set -euo pipefail
cd "$(dirname "$0")/.."
# Absolute: cargo runs a bench in its package's folder, and criterion writes its results under
# $CARGO_TARGET_DIR/criterion relative to that folder.
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
export CARGO_TARGET_DIR="$target"
skip_cargo=0; skip_openssl=0
for a in "$@"; do
  case "$a" in
    --skip-cargo) skip_cargo=1 ;;
    --skip-openssl) skip_openssl=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$skip_cargo" = 0 ]; then
  # --features std: the firmware as the simulator runs it (p256 keeps its fixed-base table).
  cargo bench -p gmhsm-firmware --features std --bench primitives -- \
    --warm-up-time 1 --measurement-time 3 '^(sm2|sm3|sm4|other)' >&2
fi
ossl="$(mktemp)"
trap 'rm -f "$ossl"' EXIT
if [ "$skip_openssl" = 0 ]; then
  command -v openssl >/dev/null || { echo "openssl not on PATH (apt-get install openssl)" >&2; exit 1; }
  {
    openssl version
    openssl speed -mr -elapsed -seconds 2 sm2
    openssl speed -mr -elapsed -seconds 2 rsa2048 rsa3072 rsa4096 ecdsap256
    for c in sm4-cbc sm4-gcm; do
      for n in 64 65536; do
        echo "+CASE:$c:$n"
        openssl speed -mr -elapsed -seconds 2 -evp "$c" -bytes "$n" || echo "+NA"
      done
    done
    openssl speed -mr -elapsed -seconds 2 -evp sm3 -bytes 1048576
  } >"$ossl" 2>/dev/null || true
fi
python3 - "$target/criterion" "$ossl" <<'PY'
import json, os, sys
crit, ossl = sys.argv[1], sys.argv[2]
def ns(path):
    try:
        with open(os.path.join(crit, path, "new", "estimates.json")) as f:
            return json.load(f)["median"]["point_estimate"]
    except OSError:
        return None
def ops(path, per=1):
    t = ns(path)
    return None if t is None else per * 1e9 / t
def mbs(path, size):
    t = ns(path)
    return None if t is None else size / t * 1e3  # bytes/ns → MB/s
o = {}
case = None
for line in open(ossl):
    p = line.strip().split(":")
    if p[0] == "+F7": o["sm2_sign"], o["sm2_verify"] = float(p[4]), float(p[5])
    elif p[0] == "+F2": o[("rsa_sign", int(p[2]))] = float(p[3])
    elif p[0] == "+F4": o["p256_sign"] = float(p[3])
    elif p[0] == "+CASE": case = (p[1], int(p[2]))
    elif p[0] == "+F" and p[2].lower() == "sm3": o["sm3"] = float(p[3]) / 1e6
    elif p[0] == "+F" and case: o[case] = float(p[3]) / 1e6
rows = [
    ("SM2 sign, crate (alg::sm2::sign)", "ops/s", ops("sm2_sign/crate"), o.get("sm2_sign")),
    ("SM2 sign, FastSigner, no pool", "ops/s", ops("sm2_sign/fast_no_pool"), o.get("sm2_sign")),
    ("SM2 sign, FastSigner + pool (refill 32 + 32 signs)", "ops/s",
     ops("sm2_sign/fast_pool_refill_plus_signs/32", 32), o.get("sm2_sign")),
    ("  pool refill alone, per pair", "ops/s", ops("sm2_sign/pool_refill/32", 32), None),
    ("SM2 sign, pool refilled by the portable 4-lane path (no IFMA)", "ops/s",
     ops("sm2_sign/fast_pool_refill_plus_signs_portable/32", 32), o.get("sm2_sign")),
    ("  portable pool refill alone, per pair", "ops/s", ops("sm2_sign/pool_refill_portable/32", 32), None),
    ("  one signature with a pair in the pool (latency)", "ops/s", ops("sm2_sign/fast_pool_hit"), None),
    ("  FastSigner setup (per key, cached)", "ops/s", ops("sm2_sign/fast_signer_setup"), None),
    ("SM2 verify, crate", "ops/s", ops("sm2_verify/crate"), o.get("sm2_verify")),
    ("SM2 verify, sm2_fast::verify (any key)", "ops/s", ops("sm2_verify/fast"), o.get("sm2_verify")),
    ("SM2 verify, FastVerifier (per-key table, cached)", "ops/s", ops("sm2_verify/fast_verifier_per_key_table"), o.get("sm2_verify")),
    ("  FastVerifier setup (per key)", "ops/s", ops("sm2_verify/fast_verifier_setup"), None),
    ("SM2 key pair generation (crate, with public key)", "ops/s", ops("sm2/keygen"), None),
    ("SM2 encrypt 32 B (card, busy key: C1 and [k]PB through tables)", "ops/s", ops("sm2/encrypt_32_key_table"), None),
    ("SM2 encrypt 32 B (card: sm2_fast::pke, C1 through the table)", "ops/s", ops("sm2/encrypt_32"), None),
    ("SM2 encrypt 32 B, sm2_fast::pke without the table", "ops/s", ops("sm2/encrypt_32_no_table"), None),
    ("SM2 encrypt 32 B, crate", "ops/s", ops("sm2/encrypt_32_crate"), None),
    ("SM2 decrypt 32 B (card: sm2_fast::pke)", "ops/s", ops("sm2/decrypt_32"), None),
    ("SM2 decrypt 32 B, batch of 8 (card: DecryptBatch, [dB]C1 on IFMA), per decryption", "ops/s",
     ops("sm2_decrypt_batch/decrypt_32_many/8", 8), None),
    ("SM2 decrypt 32 B, batch of 32, per decryption", "ops/s", ops("sm2_decrypt_batch/decrypt_32_many/32", 32), None),
    ("SM2 decrypt 32 B, crate", "ops/s", ops("sm2/decrypt_32_crate"), None),
    ("SM3 1 MiB", "MB/s", mbs("sm3/1MiB", 1 << 20), o.get("sm3")),
    ("SM3 of 64 messages of 32 B behind a 32-byte Z, sixteen at a time (gmhsm-sm3x), per message", "ops/s",
     ops("sm3/many_64x32_prefixed", 64), None),
    ("SM4-CBC encrypt 64 B", "MB/s", mbs("sm4/cbc_encrypt_64B", 64), o.get(("sm4-cbc", 64))),
    ("SM4-CBC encrypt 64 KiB", "MB/s", mbs("sm4/cbc_encrypt_64KiB", 65536), o.get(("sm4-cbc", 65536))),
    ("SM4-GCM encrypt 64 B", "MB/s", mbs("sm4/gcm_encrypt_64B", 64), o.get(("sm4-gcm", 64))),
    ("SM4-GCM encrypt 64 KiB", "MB/s", mbs("sm4/gcm_encrypt_64KiB", 65536), o.get(("sm4-gcm", 65536))),
    ("RSA-2048 sign (PKCS#1 v1.5, SHA-256), alg::rsa CRT", "ops/s", ops("other/rsa2048_sign_pkcs1v15_sha256"),
     o.get(("rsa_sign", 2048))),
    ("RSA-2048 sign, rsa crate path", "ops/s", ops("other/rsa2048_sign_crate"), o.get(("rsa_sign", 2048))),
    ("RSA-2048 sign (PSS, SHA-256)", "ops/s", ops("other/rsa2048_sign_pss_sha256"), o.get(("rsa_sign", 2048))),
    ("RSA-3072 sign (PKCS#1 v1.5, SHA-256)", "ops/s", ops("other/rsa3072_sign_pkcs1v15_sha256"),
     o.get(("rsa_sign", 3072))),
    ("RSA-4096 sign (PKCS#1 v1.5, SHA-256)", "ops/s", ops("other/rsa4096_sign_pkcs1v15_sha256"),
     o.get(("rsa_sign", 4096))),
    ("RSA-2048 decrypt (PKCS#1 v1.5; OpenSSL: private op)", "ops/s", ops("other/rsa2048_decrypt_pkcs1v15"),
     o.get(("rsa_sign", 2048))),
    ("RSA-2048 decrypt (OAEP SHA-256; OpenSSL: private op)", "ops/s", ops("other/rsa2048_decrypt_oaep_sha256"),
     o.get(("rsa_sign", 2048))),
    ("  RsaKey setup (per key, cached)", "ops/s", ops("other/rsa2048_key_setup"), None),
    ("ECDSA P-256 sign, pool refilled on IFMA (refill 32 + 32 signs; the card's path)", "ops/s",
     ops("other/ecdsa_p256_pool_refill_plus_signs_ifma/32", 32), o.get("p256_sign")),
    ("ECDSA P-256 sign, pool refilled by the p256 crate (no IFMA)", "ops/s",
     ops("other/ecdsa_p256_pool_refill_plus_signs_portable/32", 32), o.get("p256_sign")),
    ("ECDSA P-256 sign, p256 crate (hedged RFC 6979, key prepared once)", "ops/s", ops("other/ecdsa_p256_sign"),
     o.get("p256_sign")),
]
f = lambda v: "n/a" if v is None else f"{v:,.0f}"
print(f"| op | unit | gmhsm | OpenSSL 3 | gmhsm / OpenSSL |")
print("|---|---|---:|---:|---:|")
for name, unit, ours, theirs in rows:
    ratio = "" if ours is None or theirs is None else f"{ours / theirs:.2f}"
    print(f"| {name} | {unit} | {f(ours)} | {f(theirs)} | {ratio} |")
PY
