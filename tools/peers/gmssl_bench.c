/* GmSSL 3.x peer benchmark: dlopen()s the GmSSL build that a PyPI wheel links statically
 * (gmssl-pyx 2.1.0: gmssl_pyx/gmsslext.*.so exports GmSSL's C API) and calls it in tight loops.
 *
 * GmSSL's headers are not available offline, so the few types below are transcribed from
 * GmSSL 3.1.x-dev (the sm2_z256 API: include/gmssl/sm2.h, sm2_z256.h, sm3.h, sm4.h). Their
 * sizes were checked against the library's own code: sm2_sign_finish() reads
 * SM2_SIGN_CTX.num_pre_comp at offset 0x980 = 2*sizeof(SM3_CTX) + sizeof(SM2_KEY) + 32 + 32*64,
 * which holds with SM3_CTX = 112 and SM2_KEY = 128 bytes, and sm2_fast_sign_pre_compute() keeps
 * 32 points on its stack (the array form of the pool API). The contexts are over-allocated anyway,
 * and the signatures made here are verified by OpenSSL (see scripts/bench-peers.sh).
 *
 * Usage: gmssl_bench LIB.so OUTDIR   (OUTDIR receives pub.pem, key.pem, msg.bin, sig.der, ct.der)
 * The Python symbols the module references are satisfied by stubs generated at build time
 * (py_stubs.c); they are never called. */
#include "common.h"

typedef uint64_t z256_t[4];
typedef struct { z256_t X, Y, Z; } SM2_Z256_POINT;                 /* 96 */
typedef struct { SM2_Z256_POINT public_key; z256_t private_key; } SM2_KEY; /* 128 */
typedef struct { uint8_t r[32]; uint8_t s[32]; } SM2_SIGNATURE;
typedef struct { uint32_t digest[8]; uint64_t nblocks; uint8_t block[64]; size_t num; } SM3_CTX; /* 112 */
typedef struct { z256_t k; z256_t x1_modn; } SM2_SIGN_PRE_COMP;    /* 64 */
typedef struct { uint32_t rk[32]; } SM4_KEY;

static int (*sm2_key_generate)(SM2_KEY *);
static int (*sm2_compute_z)(uint8_t z[32], const SM2_Z256_POINT *, const char *, size_t);
static void (*sm3_init)(SM3_CTX *);
static void (*sm3_update)(SM3_CTX *, const uint8_t *, size_t);
static void (*sm3_finish)(SM3_CTX *, uint8_t dgst[32]);
static int (*sm2_sign)(const SM2_KEY *, const uint8_t dgst[32], uint8_t *sig, size_t *siglen);
static int (*sm2_verify)(const SM2_KEY *, const uint8_t dgst[32], const uint8_t *sig, size_t siglen);
static int (*sm2_do_verify)(const SM2_KEY *, const uint8_t dgst[32], const SM2_SIGNATURE *);
static int (*sm2_sign_init)(void *ctx, const SM2_KEY *, const char *id, size_t idlen);
static int (*sm2_sign_update)(void *ctx, const uint8_t *, size_t);
static int (*sm2_sign_finish)(void *ctx, uint8_t *sig, size_t *siglen);
static int (*sm2_sign_reset)(void *ctx);
static int (*sm2_verify_init)(void *ctx, const SM2_KEY *, const char *id, size_t idlen);
static int (*sm2_verify_update)(void *ctx, const uint8_t *, size_t);
static int (*sm2_verify_finish)(void *ctx, const uint8_t *sig, size_t siglen);
static int (*sm2_verify_reset)(void *ctx);
static int (*sm2_fast_sign_compute_key)(const SM2_KEY *, z256_t);
static int (*sm2_fast_sign_pre_compute)(SM2_SIGN_PRE_COMP pre[32]);
static int (*sm2_fast_sign)(const z256_t, SM2_SIGN_PRE_COMP *, const uint8_t dgst[32], SM2_SIGNATURE *);
static int (*sm2_encrypt)(const SM2_KEY *, const uint8_t *, size_t, uint8_t *, size_t *);
static int (*sm2_decrypt)(const SM2_KEY *, const uint8_t *, size_t, uint8_t *, size_t *);
static int (*sm2_public_key_info_to_pem)(const SM2_KEY *, FILE *);
static int (*sm2_private_key_info_to_pem)(const SM2_KEY *, FILE *);
static int (*rand_bytes)(uint8_t *, size_t);
static void (*sm4_set_encrypt_key)(SM4_KEY *, const uint8_t key[16]);
static void (*sm4_encrypt)(const SM4_KEY *, const uint8_t in[16], uint8_t out[16]);
static void (*sm4_cbc_encrypt_blocks)(const SM4_KEY *, uint8_t iv[16], const uint8_t *, size_t nblocks, uint8_t *);
static int (*sm4_gcm_encrypt)(const SM4_KEY *, const uint8_t *iv, size_t ivlen, const uint8_t *aad, size_t aadlen,
	const uint8_t *in, size_t inlen, uint8_t *out, size_t taglen, uint8_t *tag);

static SM2_KEY key;
static uint8_t msg[32];
static uint8_t sig[80];
static size_t siglen;
static uint8_t ct[400];
static size_t ctlen;
static _Alignas(64) uint8_t sign_ctx[16384];   /* SM2_SIGN_CTX is 4,000 bytes in this version */
static _Alignas(64) uint8_t verify_ctx[16384]; /* SM2_VERIFY_CTX is 1,888 bytes */
static z256_t fast_private;
static SM2_SIGN_PRE_COMP pool[32];
static unsigned pool_i;
static SM4_KEY sm4key;
static uint8_t *buf_in, *buf_out;
static size_t buf_len;

static void digest_with_z(uint8_t dgst[32])
{
	uint8_t z[32];
	SM3_CTX c;
	sm2_compute_z(z, &key.public_key, SM2_ID, 16);
	sm3_init(&c);
	sm3_update(&c, z, 32);
	sm3_update(&c, msg, sizeof(msg));
	sm3_finish(&c, dgst);
}

static int op_sign_z(void *a)
{
	uint8_t d[32];
	(void)a;
	digest_with_z(d);
	return sm2_sign(&key, d, sig, &siglen);
}

static int op_sign_ctx(void *a)
{
	(void)a;
	sm2_sign_reset(sign_ctx);
	if (sm2_sign_update(sign_ctx, msg, sizeof(msg)) != 1) return 0;
	return sm2_sign_finish(sign_ctx, sig, &siglen);
}

static int op_pre_compute(void *a) { (void)a; return sm2_fast_sign_pre_compute(pool); }

static int op_fast_sign(void *a)
{
	SM2_SIGNATURE s;
	(void)a;
	/* timing only: the (k, x1) pairs are reused round-robin, which a real signer must never do */
	return sm2_fast_sign(fast_private, &pool[pool_i++ & 31], msg, &s);
}

static int op_verify_z(void *a)
{
	uint8_t d[32];
	(void)a;
	digest_with_z(d);
	return sm2_verify(&key, d, sig, siglen);
}

static int op_verify_ctx(void *a)
{
	(void)a;
	sm2_verify_reset(verify_ctx);
	if (sm2_verify_update(verify_ctx, msg, sizeof(msg)) != 1) return 0;
	return sm2_verify_finish(verify_ctx, sig, siglen);
}

static int op_encrypt(void *a)
{
	uint8_t out[400];
	size_t n;
	(void)a;
	return sm2_encrypt(&key, msg, 32, out, &n);
}

static int op_decrypt(void *a)
{
	uint8_t out[300];
	size_t n;
	(void)a;
	return sm2_decrypt(&key, ct, ctlen, out, &n);
}

static int op_keygen(void *a)
{
	SM2_KEY k;
	(void)a;
	return sm2_key_generate(&k);
}

static int op_rand(void *a)
{
	uint8_t r[32];
	(void)a;
	return rand_bytes(r, 32);
}

static int op_cbc(void *a)
{
	uint8_t iv[16] = {0};
	(void)a;
	sm4_cbc_encrypt_blocks(&sm4key, iv, buf_in, buf_len / 16, buf_out);
	return 1;
}

static int op_gcm(void *a)
{
	uint8_t tag[16];
	(void)a;
	return sm4_gcm_encrypt(&sm4key, GCM_IV, 12, NULL, 0, buf_in, buf_len, buf_out, 16, tag);
}

int main(int argc, char **argv)
{
	const char *P = "GmSSL (gmssl-pyx 2.1.0, C API)";
	char h[1024];
	if (argc != 3) {
		fprintf(stderr, "usage: %s LIB.so OUTDIR\n", argv[0]);
		return 2;
	}
	bench_init();
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
		return 3;
	}
	LOAD(sm2_key_generate, "sm2_key_generate");
	LOAD(sm2_compute_z, "sm2_compute_z");
	LOAD(sm3_init, "sm3_init");
	LOAD(sm3_update, "sm3_update");
	LOAD(sm3_finish, "sm3_finish");
	LOAD(sm2_sign, "sm2_sign");
	LOAD(sm2_verify, "sm2_verify");
	LOAD(sm2_do_verify, "sm2_do_verify");
	LOAD(sm2_sign_init, "sm2_sign_init");
	LOAD(sm2_sign_update, "sm2_sign_update");
	LOAD(sm2_sign_finish, "sm2_sign_finish");
	LOAD(sm2_sign_reset, "sm2_sign_reset");
	LOAD(sm2_verify_init, "sm2_verify_init");
	LOAD(sm2_verify_update, "sm2_verify_update");
	LOAD(sm2_verify_finish, "sm2_verify_finish");
	LOAD(sm2_verify_reset, "sm2_verify_reset");
	LOAD(sm2_fast_sign_compute_key, "sm2_fast_sign_compute_key");
	LOAD(sm2_fast_sign_pre_compute, "sm2_fast_sign_pre_compute");
	LOAD(sm2_fast_sign, "sm2_fast_sign");
	LOAD(sm2_encrypt, "sm2_encrypt");
	LOAD(sm2_decrypt, "sm2_decrypt");
	LOAD(sm2_public_key_info_to_pem, "sm2_public_key_info_to_pem");
	LOAD(sm2_private_key_info_to_pem, "sm2_private_key_info_to_pem");
	LOAD(rand_bytes, "rand_bytes");
	LOAD(sm4_set_encrypt_key, "sm4_set_encrypt_key");
	LOAD(sm4_encrypt, "sm4_encrypt");
	LOAD(sm4_cbc_encrypt_blocks, "sm4_cbc_encrypt_blocks");
	LOAD(sm4_gcm_encrypt, "sm4_gcm_encrypt");

	/* ---- correctness ---- */
	{
		uint8_t out[16];
		sm4_set_encrypt_key(&sm4key, SM4_KAT_KEY);
		sm4_encrypt(&sm4key, SM4_KAT_KEY, out);
		check("gmssl sm4 GB/T 32907 vector", memcmp(out, SM4_KAT_CT, 16) == 0, "");
		uint8_t in[64] = {0}, o[64], tag[16], iv[16] = {0};
		sm4_cbc_encrypt_blocks(&sm4key, iv, in, 4, o);
		hex(h, o, 64);
		printf("VECTOR\tsm4-cbc\tgmssl\t%s\n", h);
		sm4_gcm_encrypt(&sm4key, GCM_IV, 12, NULL, 0, in, 64, o, 16, tag);
		hex(h, o, 64);
		hex(h + 128, tag, 16);
		printf("VECTOR\tsm4-gcm\tgmssl\t%s\n", h);
	}
	for (int i = 0; i < 32; i++) msg[i] = (uint8_t)i;
	if (sm2_key_generate(&key) != 1) { check("gmssl sm2_key_generate", 0, ""); return 1; }
	if (sm2_sign_init(sign_ctx, &key, SM2_ID, 16) != 1) { check("gmssl sm2_sign_init", 0, ""); return 1; }
	if (sm2_verify_init(verify_ctx, &key, SM2_ID, 16) != 1) { check("gmssl sm2_verify_init", 0, ""); return 1; }
	if (*(unsigned *)(sign_ctx + 0x980) != 32) {
		check("gmssl SM2_SIGN_CTX layout (num_pre_comp at 0x980 == 32 after init)", 0, "struct layout differs from GmSSL 3.1.x-dev: results not trusted");
		return 1;
	}
	check("gmssl SM2_SIGN_CTX layout (num_pre_comp at 0x980 == 32 after init)", 1, "");
	{
		int ok = op_sign_z(NULL) == 1 && op_verify_z(NULL) == 1 && op_verify_ctx(NULL) == 1;
		check("gmssl sign(Z+SM3+sm2_sign) verifies with sm2_verify and sm2_verify_finish", ok, "");
		ok = op_sign_ctx(NULL) == 1 && op_verify_z(NULL) == 1 && op_verify_ctx(NULL) == 1;
		check("gmssl sm2_sign_finish (pool) signature verifies", ok, "");
		sig[siglen / 2] ^= 1;
		check("gmssl corrupted signature is rejected", op_verify_z(NULL) != 1, "");
		sig[siglen / 2] ^= 1;
		write_file(argv[2], "sig.der", sig, siglen);
		write_file(argv[2], "msg.bin", msg, sizeof(msg));
		char path[4096];
		snprintf(path, sizeof(path), "%s/pub.pem", argv[2]);
		FILE *f = fopen(path, "w");
		ok = f && sm2_public_key_info_to_pem(&key, f) == 1;
		if (f) fclose(f);
		snprintf(path, sizeof(path), "%s/key.pem", argv[2]);
		f = fopen(path, "w");
		ok = ok && f && sm2_private_key_info_to_pem(&key, f) == 1;
		if (f) fclose(f);
		check("gmssl PEM export", ok, "");
		/* fast_sign on its own, checked with sm2_do_verify on the digest */
		uint8_t d[32];
		SM2_SIGNATURE s;
		digest_with_z(d);
		ok = sm2_fast_sign_compute_key(&key, fast_private) == 1 && sm2_fast_sign_pre_compute(pool) == 1
			&& sm2_fast_sign(fast_private, &pool[0], d, &s) == 1 && sm2_do_verify(&key, d, &s) == 1;
		check("gmssl sm2_fast_sign with a pre-computed pair verifies", ok, "");
		uint8_t pt[300];
		size_t ptlen = 0;
		ok = sm2_encrypt(&key, msg, 32, ct, &ctlen) == 1 && sm2_decrypt(&key, ct, ctlen, pt, &ptlen) == 1
			&& ptlen == 32 && memcmp(pt, msg, 32) == 0;
		check("gmssl sm2_encrypt/sm2_decrypt round trip (32 B)", ok, "");
		write_file(argv[2], "ct.der", ct, ctlen);
	}

	/* ---- timing ---- */
	result("SM2 sign, 32 B msg", P, bench_run(op_sign_z, NULL), "ops/s",
		"sm2_compute_z (Z_A, default ID) + SM3(Z||M) + sm2_sign (fresh k: rand_bytes + k*G) + DER; no pool");
	result("SM2 sign, 32 B msg", "GmSSL sm2_sign_{reset,update,finish} (pool)", bench_run(op_sign_ctx, NULL), "ops/s",
		"Z_A cached in the ctx by sm2_sign_init; per call SM3(Z||M) + one (k, x1) from the ctx pool of 32 "
		"(refilled in line by sm2_fast_sign_pre_compute, amortised) + DER");
	double pc = bench_run(op_pre_compute, NULL);
	result("SM2 sign pool refill, per (k, x1) pair", "GmSSL sm2_fast_sign_pre_compute", pc < 0 ? pc : pc * 32, "ops/s",
		"32 x (rand_bytes + k*G) with one batched inversion (Montgomery's trick), divided by 32");
	result("SM2 sign, online part only", "GmSSL sm2_fast_sign", bench_run(op_fast_sign, NULL), "ops/s",
		"given digest e and a pre-computed (k, x1): r = e + x1, s = (k + r)*(1+d)^-1 - r; no hash, no DER");
	result("SM2 verify, 32 B msg", P, bench_run(op_verify_z, NULL), "ops/s",
		"sm2_compute_z + SM3(Z||M) + DER decode + s*G + t*P");
	result("SM2 verify, 32 B msg", "GmSSL sm2_verify_{reset,update,finish} (cached)", bench_run(op_verify_ctx, NULL), "ops/s",
		"Z_A and a 16-point table of P cached by sm2_verify_init; per call SM3(Z||M) + DER decode + s*G + t*P");
	result("SM2 encrypt, 32 B", P, bench_run(op_encrypt, NULL), "ops/s", "sm2_encrypt: k*G, k*P, KDF, C3 = SM3, DER output");
	result("SM2 decrypt, 32 B", P, bench_run(op_decrypt, NULL), "ops/s", "sm2_decrypt: DER decode, on-curve check, d*C1, KDF, C3 check");
	result("SM2 key generation", P, bench_run(op_keygen, NULL), "ops/s", "sm2_key_generate: rand_bytes + d*G");
	result("random 32 B (informative)", "GmSSL rand_bytes", bench_run(op_rand, NULL), "ops/s",
		"this build's rand_bytes: fopen + fread + fclose of /dev/urandom per call");
	static const size_t sizes[2] = {64, 65536};
	buf_in = calloc(1, 65536 + 64);
	buf_out = calloc(1, 65536 + 64);
	sm4_set_encrypt_key(&sm4key, SM4_KAT_KEY);
	for (int i = 0; i < 2; i++) {
		char op[64];
		buf_len = sizes[i];
		double r = bench_run(op_cbc, NULL);
		snprintf(op, sizeof(op), "SM4-CBC encrypt, %s", i ? "64 KiB" : "64 B");
		result(op, P, r < 0 ? r : r * buf_len / 1e6, "MB/s", "sm4_cbc_encrypt_blocks (no padding), key schedule done once");
		r = bench_run(op_gcm, NULL);
		snprintf(op, sizeof(op), "SM4-GCM encrypt, %s", i ? "64 KiB" : "64 B");
		result(op, P, r < 0 ? r : r * buf_len / 1e6, "MB/s",
			"sm4_gcm_encrypt one-shot: H = E(0), 12-B IV, no AAD, CTR + GHASH, 16-B tag; key schedule done once");
	}
	return bench_failed;
}
