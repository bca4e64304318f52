"""gmssl-fast 0.1.0 peer benchmark (GmSSL linked statically into a pyo3 module whose GmSSL symbols
are hidden, so it can only be driven from Python). Prints the same tab-separated lines as the C
harnesses. Each op is timed in a plain `for` loop; the cost of that loop plus one call of a C
builtin (`len`) is measured too and printed, with ops/s net of that overhead beside the raw figure.

Usage: python gmssl_fast_bench.py [SM4_CBC_VECTOR_HEX SM4_GCM_VECTOR_HEX]"""
import os
import sys
import time

from gmssl_fast import _core

SECS = float(os.environ.get("BENCH_SECONDS", "2"))
PEER = "GmSSL 3.1 (gmssl-fast 0.1.0, Python)"
failed = False


def rate(fn, *args):
    n, batch = 0, 1
    while True:  # size batches to ~20 ms
        t0 = time.perf_counter()
        for _ in range(batch):
            fn(*args)
        if time.perf_counter() - t0 >= 0.02:
            break
        batch *= 2
    t0 = time.perf_counter()
    while True:
        for _ in range(batch):
            fn(*args)
        n += batch
        t = time.perf_counter() - t0
        if t >= SECS:
            return n / t


def check(name, ok, detail=""):
    global failed
    print(f"CHECK\t{name}\t{'ok' if ok else 'FAIL'}\t{detail}", flush=True)
    failed |= not ok


key16 = bytes.fromhex("0123456789abcdeffedcba9876543210")
iv16 = bytes(16)
nonce = bytes(range(12))
msg = bytes(range(32))
priv, pub = _core.sm2_generate()
h = _core.Sm2KeyHandle(priv, pub)
sig = h.sign(msg)
ct = h.encrypt(msg)
check("gmssl-fast SM2 sign/verify round trip", h.verify(msg, sig) is True)
bad = bytearray(sig)
bad[5] ^= 1
try:
    rejected = h.verify(msg, bytes(bad)) is False
except Exception:  # noqa: BLE001 - a raised verification error is a rejection too
    rejected = True
check("gmssl-fast corrupted signature is rejected", rejected)
check("gmssl-fast SM2 encrypt/decrypt round trip (32 B)", h.decrypt(ct) == msg)
if len(sys.argv) == 3:
    cbc = _core.sm4_cbc_encrypt(key16, iv16, bytes(64))[:64].hex()
    check("gmssl-fast SM4-CBC matches the C harnesses' vector", cbc == sys.argv[1], cbc)
    out = _core.sm4_gcm_encrypt(key16, nonce, b"", bytes(64))
    got = (out[0] + out[1]).hex() if isinstance(out, tuple) else bytes(out).hex()
    check("gmssl-fast SM4-GCM matches the C harnesses' vector", got == sys.argv[2], got)

data = b"x"
base = rate(len, data)
print(f"NOTE\tgmssl-fast: Python loop + one C-builtin call costs {1e6 / base:.3f} us; 'net' subtracts it", flush=True)


def result(op, r, unit, per, incl):
    net = 1.0 / (1.0 / r - 1.0 / base) if r < base else float("nan")
    v, n = (r * per / 1e6, net * per / 1e6) if unit == "MB/s" else (r, net)
    print(f"RESULT\t{op}\t{PEER}\t{v:.1f}\t{unit}\t{incl}; {n:,.1f} {unit} net of the Python call overhead", flush=True)


result("SM2 sign, 32 B msg", rate(h.sign, msg), "ops/s", 1,
       "Sm2KeyHandle.sign: GmSSL sm2_sign_init (Z_A, default ID) + update + finish (fresh k), DER to raw r||s")
result("SM2 verify, 32 B msg", rate(h.verify, msg, sig), "ops/s", 1,
       "Sm2KeyHandle.verify: raw to DER, Z_A + SM3 + verify")
result("SM2 encrypt, 32 B", rate(h.encrypt, msg), "ops/s", 1, "Sm2KeyHandle.encrypt: GmSSL sm2_encrypt, DER to raw C1C3C2")
result("SM2 decrypt, 32 B", rate(h.decrypt, ct), "ops/s", 1, "Sm2KeyHandle.decrypt: raw to DER, GmSSL sm2_decrypt")
result("SM2 key generation", rate(_core.sm2_generate), "ops/s", 1, "sm2_generate: key pair + hex encoding")
for size, label in ((64, "64 B"), (65536, "64 KiB")):
    pt = bytes(size)
    result(f"SM4-CBC encrypt, {label}", rate(_core.sm4_cbc_encrypt, key16, iv16, pt), "MB/s", size,
           "sm4_cbc_encrypt: key schedule + PKCS#7 padding (one extra block) per call")
    result(f"SM4-GCM encrypt, {label}", rate(_core.sm4_gcm_encrypt, key16, nonce, b"", pt), "MB/s", size,
           "sm4_gcm_encrypt one-shot: key schedule, 12-B nonce, no AAD, 16-B tag per call")
sys.exit(1 if failed else 0)
