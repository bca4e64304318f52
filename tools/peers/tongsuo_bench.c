/* Tongsuo peer benchmark: dlopen()s the Tongsuo (BabaSSL 8.3.2, OpenSSL 1.1.1 API) libcrypto that
 * the tongsuopy 1.0.1 wheel links statically into tongsuopy/backends/_tongsuo.abi3.so, and drives
 * it through the public EVP API in tight loops (no Python involved). Constants are those of
 * OpenSSL 1.1.1's headers, which Tongsuo 8.3 keeps.
 *
 * Usage: tongsuo_bench LIB.so OUTDIR   (OUTDIR receives pub.pem, key.pem, msg.bin, sig.der)
 * The Python symbols the module references are satisfied by generated stubs; never called. */
#include "common.h"

#define EVP_PKEY_EC 408
#define NID_sm2 1172
#define EVP_PKEY_SM2 NID_sm2
#define EVP_PKEY_OP_PARAMGEN (1 << 1)
#define EVP_PKEY_OP_KEYGEN (1 << 2)
#define EVP_PKEY_ALG_CTRL 0x1000
#define EVP_PKEY_CTRL_EC_PARAMGEN_CURVE_NID (EVP_PKEY_ALG_CTRL + 1)
/* OpenSSL 1.1.1 (include/openssl/ec.h): EVP_PKEY_ALG_CTRL + 11; OpenSSL 3 moved it to 15 */
#define EVP_PKEY_CTRL_SET1_ID (EVP_PKEY_ALG_CTRL + 11)
#define EVP_CTRL_AEAD_GET_TAG 0x10

typedef struct opaque EVP_PKEY, EVP_PKEY_CTX, EVP_MD_CTX, EVP_MD, EVP_CIPHER, EVP_CIPHER_CTX, ENGINE;

static const char *(*OpenSSL_version)(int);
static EVP_PKEY_CTX *(*EVP_PKEY_CTX_new_id)(int, ENGINE *);
static EVP_PKEY_CTX *(*EVP_PKEY_CTX_new)(EVP_PKEY *, ENGINE *);
static void (*EVP_PKEY_CTX_free)(EVP_PKEY_CTX *);
static int (*EVP_PKEY_CTX_ctrl)(EVP_PKEY_CTX *, int, int, int, int, void *);
static int (*EVP_PKEY_keygen_init)(EVP_PKEY_CTX *);
static int (*EVP_PKEY_keygen)(EVP_PKEY_CTX *, EVP_PKEY **);
static int (*EVP_PKEY_set_alias_type)(EVP_PKEY *, int);
static int (*EVP_PKEY_id)(const EVP_PKEY *);
static void (*EVP_PKEY_free)(EVP_PKEY *);
static EVP_MD_CTX *(*EVP_MD_CTX_new)(void);
static void (*EVP_MD_CTX_set_pkey_ctx)(EVP_MD_CTX *, EVP_PKEY_CTX *);
static const EVP_MD *(*EVP_sm3)(void);
static int (*EVP_DigestSignInit)(EVP_MD_CTX *, EVP_PKEY_CTX **, const EVP_MD *, ENGINE *, EVP_PKEY *);
static int (*EVP_DigestSign)(EVP_MD_CTX *, uint8_t *, size_t *, const uint8_t *, size_t);
static int (*EVP_DigestVerifyInit)(EVP_MD_CTX *, EVP_PKEY_CTX **, const EVP_MD *, ENGINE *, EVP_PKEY *);
static int (*EVP_DigestVerify)(EVP_MD_CTX *, const uint8_t *, size_t, const uint8_t *, size_t);
static int (*EVP_PKEY_encrypt_init)(EVP_PKEY_CTX *);
static int (*EVP_PKEY_encrypt)(EVP_PKEY_CTX *, uint8_t *, size_t *, const uint8_t *, size_t);
static int (*EVP_PKEY_decrypt_init)(EVP_PKEY_CTX *);
static int (*EVP_PKEY_decrypt)(EVP_PKEY_CTX *, uint8_t *, size_t *, const uint8_t *, size_t);
static const EVP_CIPHER *(*EVP_sm4_ecb)(void);
static const EVP_CIPHER *(*EVP_sm4_cbc)(void);
static const EVP_CIPHER *(*EVP_sm4_gcm)(void);
static EVP_CIPHER_CTX *(*EVP_CIPHER_CTX_new)(void);
static int (*EVP_CIPHER_CTX_set_padding)(EVP_CIPHER_CTX *, int);
static int (*EVP_CIPHER_CTX_ctrl)(EVP_CIPHER_CTX *, int, int, void *);
static int (*EVP_EncryptInit_ex)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const uint8_t *, const uint8_t *);
static int (*EVP_EncryptUpdate)(EVP_CIPHER_CTX *, uint8_t *, int *, const uint8_t *, int);
static int (*EVP_EncryptFinal_ex)(EVP_CIPHER_CTX *, uint8_t *, int *);
static int (*PEM_write_PUBKEY)(FILE *, EVP_PKEY *);
static int (*PEM_write_PrivateKey)(FILE *, EVP_PKEY *, const EVP_CIPHER *, uint8_t *, int, void *, void *);

static EVP_PKEY_CTX *kctx;
static EVP_PKEY *pkey;
static EVP_MD_CTX *sctx, *vctx;
static EVP_PKEY_CTX *ectx, *dctx;
static EVP_CIPHER_CTX *cctx;
static uint8_t msg[32], sig[80], ct[400];
static size_t siglen, ctlen;
static uint8_t *buf_in, *buf_out;
static int buf_len;

static EVP_PKEY *keygen(void)
{
	EVP_PKEY *k = NULL;
	if (EVP_PKEY_keygen(kctx, &k) != 1) return NULL;
	if (EVP_PKEY_id(k) != EVP_PKEY_SM2 && EVP_PKEY_set_alias_type(k, EVP_PKEY_SM2) != 1) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

static EVP_MD_CTX *md_ctx_with_id(void)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = EVP_PKEY_CTX_new(pkey, NULL);
	if (!m || !p || EVP_PKEY_CTX_ctrl(p, -1, -1, EVP_PKEY_CTRL_SET1_ID, 16, (void *)SM2_ID) <= 0) return NULL;
	EVP_MD_CTX_set_pkey_ctx(m, p);
	return m;
}

static int op_sign(void *a)
{
	(void)a;
	siglen = sizeof(sig);
	if (EVP_DigestSignInit(sctx, NULL, EVP_sm3(), NULL, pkey) != 1) return 0;
	return EVP_DigestSign(sctx, sig, &siglen, msg, sizeof(msg));
}

static int op_verify(void *a)
{
	(void)a;
	if (EVP_DigestVerifyInit(vctx, NULL, EVP_sm3(), NULL, pkey) != 1) return 0;
	return EVP_DigestVerify(vctx, sig, siglen, msg, sizeof(msg));
}

static int op_encrypt(void *a)
{
	uint8_t out[400];
	size_t n = sizeof(out);
	(void)a;
	return EVP_PKEY_encrypt(ectx, out, &n, msg, 32);
}

static int op_decrypt(void *a)
{
	uint8_t out[400];
	size_t n = sizeof(out);
	(void)a;
	return EVP_PKEY_decrypt(dctx, out, &n, ct, ctlen);
}

static int op_keygen(void *a)
{
	(void)a;
	EVP_PKEY *k = keygen();
	if (!k) return 0;
	EVP_PKEY_free(k);
	return 1;
}

static int op_cbc(void *a)
{
	int n;
	(void)a;
	return EVP_EncryptUpdate(cctx, buf_out, &n, buf_in, buf_len);
}

static int op_gcm(void *a)
{
	int n, m;
	uint8_t tag[16];
	(void)a;
	if (EVP_EncryptInit_ex(cctx, NULL, NULL, NULL, GCM_IV) != 1) return 0;
	if (EVP_EncryptUpdate(cctx, buf_out, &n, buf_in, buf_len) != 1) return 0;
	if (EVP_EncryptFinal_ex(cctx, buf_out + n, &m) != 1) return 0;
	return EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
}

int main(int argc, char **argv)
{
	char P[128], h[1024], path[4096];
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
	LOAD(OpenSSL_version, "OpenSSL_version");
	LOAD(EVP_PKEY_CTX_new_id, "EVP_PKEY_CTX_new_id");
	LOAD(EVP_PKEY_CTX_new, "EVP_PKEY_CTX_new");
	LOAD(EVP_PKEY_CTX_free, "EVP_PKEY_CTX_free");
	LOAD(EVP_PKEY_CTX_ctrl, "EVP_PKEY_CTX_ctrl");
	LOAD(EVP_PKEY_keygen_init, "EVP_PKEY_keygen_init");
	LOAD(EVP_PKEY_keygen, "EVP_PKEY_keygen");
	LOAD(EVP_PKEY_set_alias_type, "EVP_PKEY_set_alias_type");
	LOAD(EVP_PKEY_id, "EVP_PKEY_id");
	LOAD(EVP_PKEY_free, "EVP_PKEY_free");
	LOAD(EVP_MD_CTX_new, "EVP_MD_CTX_new");
	LOAD(EVP_MD_CTX_set_pkey_ctx, "EVP_MD_CTX_set_pkey_ctx");
	LOAD(EVP_sm3, "EVP_sm3");
	LOAD(EVP_DigestSignInit, "EVP_DigestSignInit");
	LOAD(EVP_DigestSign, "EVP_DigestSign");
	LOAD(EVP_DigestVerifyInit, "EVP_DigestVerifyInit");
	LOAD(EVP_DigestVerify, "EVP_DigestVerify");
	LOAD(EVP_PKEY_encrypt_init, "EVP_PKEY_encrypt_init");
	LOAD(EVP_PKEY_encrypt, "EVP_PKEY_encrypt");
	LOAD(EVP_PKEY_decrypt_init, "EVP_PKEY_decrypt_init");
	LOAD(EVP_PKEY_decrypt, "EVP_PKEY_decrypt");
	LOAD(EVP_sm4_ecb, "EVP_sm4_ecb");
	LOAD(EVP_sm4_cbc, "EVP_sm4_cbc");
	LOAD(EVP_sm4_gcm, "EVP_sm4_gcm");
	LOAD(EVP_CIPHER_CTX_new, "EVP_CIPHER_CTX_new");
	LOAD(EVP_CIPHER_CTX_set_padding, "EVP_CIPHER_CTX_set_padding");
	LOAD(EVP_CIPHER_CTX_ctrl, "EVP_CIPHER_CTX_ctrl");
	LOAD(EVP_EncryptInit_ex, "EVP_EncryptInit_ex");
	LOAD(EVP_EncryptUpdate, "EVP_EncryptUpdate");
	LOAD(EVP_EncryptFinal_ex, "EVP_EncryptFinal_ex");
	LOAD(PEM_write_PUBKEY, "PEM_write_PUBKEY");
	LOAD(PEM_write_PrivateKey, "PEM_write_PrivateKey");

	printf("NOTE\tTongsuo library: %s\n", OpenSSL_version(0));
	snprintf(P, sizeof(P), "Tongsuo 8.3.2 (tongsuopy 1.0.1, EVP)");

	/* ---- correctness ---- */
	cctx = EVP_CIPHER_CTX_new();
	{
		uint8_t in[64] = {0}, o[96], tag[16], iv[16] = {0};
		int n = 0, m = 0;
		int ok = EVP_EncryptInit_ex(cctx, EVP_sm4_ecb(), NULL, SM4_KAT_KEY, NULL) == 1
			&& EVP_CIPHER_CTX_set_padding(cctx, 0) == 1
			&& EVP_EncryptUpdate(cctx, o, &n, SM4_KAT_KEY, 16) == 1 && n == 16;
		check("tongsuo sm4 GB/T 32907 vector", ok && memcmp(o, SM4_KAT_CT, 16) == 0, "");
		ok = EVP_EncryptInit_ex(cctx, EVP_sm4_cbc(), NULL, SM4_KAT_KEY, iv) == 1
			&& EVP_CIPHER_CTX_set_padding(cctx, 0) == 1
			&& EVP_EncryptUpdate(cctx, o, &n, in, 64) == 1 && n == 64;
		hex(h, o, 64);
		printf("VECTOR\tsm4-cbc\ttongsuo\t%s\n", ok ? h : "error");
		ok = EVP_EncryptInit_ex(cctx, EVP_sm4_gcm(), NULL, SM4_KAT_KEY, GCM_IV) == 1
			&& EVP_EncryptUpdate(cctx, o, &n, in, 64) == 1 && EVP_EncryptFinal_ex(cctx, o + n, &m) == 1
			&& EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
		hex(h, o, 64);
		hex(h + 128, tag, 16);
		printf("VECTOR\tsm4-gcm\ttongsuo\t%s\n", ok ? h : "error");
	}
	for (int i = 0; i < 32; i++) msg[i] = (uint8_t)i;
	kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	if (!kctx || EVP_PKEY_keygen_init(kctx) != 1
		|| EVP_PKEY_CTX_ctrl(kctx, EVP_PKEY_EC, EVP_PKEY_OP_PARAMGEN | EVP_PKEY_OP_KEYGEN,
			EVP_PKEY_CTRL_EC_PARAMGEN_CURVE_NID, NID_sm2, NULL) <= 0
		|| !(pkey = keygen())) {
		check("tongsuo SM2 key generation", 0, "");
		return 1;
	}
	sctx = md_ctx_with_id();
	vctx = md_ctx_with_id();
	ectx = EVP_PKEY_CTX_new(pkey, NULL);
	dctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (!sctx || !vctx || !ectx || !dctx || EVP_PKEY_encrypt_init(ectx) != 1 || EVP_PKEY_decrypt_init(dctx) != 1) {
		check("tongsuo SM2 contexts", 0, "");
		return 1;
	}
	{
		int ok = op_sign(NULL) == 1 && op_verify(NULL) == 1;
		check("tongsuo SM2 sign/verify round trip", ok, "");
		sig[siglen / 2] ^= 1;
		check("tongsuo corrupted signature is rejected", op_verify(NULL) != 1, "");
		sig[siglen / 2] ^= 1;
		write_file(argv[2], "sig.der", sig, siglen);
		write_file(argv[2], "msg.bin", msg, sizeof(msg));
		snprintf(path, sizeof(path), "%s/pub.pem", argv[2]);
		FILE *f = fopen(path, "w");
		ok = f && PEM_write_PUBKEY(f, pkey) == 1;
		if (f) fclose(f);
		snprintf(path, sizeof(path), "%s/key.pem", argv[2]);
		f = fopen(path, "w");
		ok = ok && f && PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
		if (f) fclose(f);
		check("tongsuo PEM export", ok, "");
		uint8_t pt[400];
		size_t ptlen = sizeof(pt);
		ctlen = sizeof(ct);
		ok = EVP_PKEY_encrypt(ectx, ct, &ctlen, msg, 32) == 1
			&& EVP_PKEY_decrypt(dctx, pt, &ptlen, ct, ctlen) == 1 && ptlen == 32 && memcmp(pt, msg, 32) == 0;
		check("tongsuo SM2 encrypt/decrypt round trip (32 B)", ok, "");
		write_file(argv[2], "ct.der", ct, ctlen);
	}

	/* ---- timing ---- */
	result("SM2 sign, 32 B msg", P, bench_run(op_sign, NULL), "ops/s",
		"EVP_DigestSignInit (Z_A with ID 1234567812345678) + EVP_DigestSign (SM3(Z||M), fresh k, DER), ctx reused");
	result("SM2 verify, 32 B msg", P, bench_run(op_verify, NULL), "ops/s",
		"EVP_DigestVerifyInit (Z_A) + EVP_DigestVerify (SM3, DER decode, s*G + t*P), ctx reused");
	result("SM2 encrypt, 32 B", P, bench_run(op_encrypt, NULL), "ops/s", "EVP_PKEY_encrypt: k*G, k*P, KDF, SM3, DER output");
	result("SM2 decrypt, 32 B", P, bench_run(op_decrypt, NULL), "ops/s", "EVP_PKEY_decrypt: DER decode, d*C1, KDF, C3 check");
	result("SM2 key generation", P, bench_run(op_keygen, NULL), "ops/s", "EVP_PKEY_keygen (EC, curve SM2) + set alias SM2 + free");
	static const int sizes[2] = {64, 65536};
	buf_in = calloc(1, 65536 + 64);
	buf_out = calloc(1, 65536 + 64);
	for (int i = 0; i < 2; i++) {
		char op[64];
		uint8_t iv[16] = {0};
		buf_len = sizes[i];
		EVP_EncryptInit_ex(cctx, EVP_sm4_cbc(), NULL, SM4_KAT_KEY, iv);
		EVP_CIPHER_CTX_set_padding(cctx, 0);
		double r = bench_run(op_cbc, NULL);
		snprintf(op, sizeof(op), "SM4-CBC encrypt, %s", i ? "64 KiB" : "64 B");
		result(op, P, r < 0 ? r : r * buf_len / 1e6, "MB/s", "EVP_EncryptUpdate on an initialised ctx (as openssl speed -evp does)");
		EVP_EncryptInit_ex(cctx, EVP_sm4_gcm(), NULL, SM4_KAT_KEY, GCM_IV);
		r = bench_run(op_gcm, NULL);
		snprintf(op, sizeof(op), "SM4-GCM encrypt, %s", i ? "64 KiB" : "64 B");
		result(op, P, r < 0 ? r : r * buf_len / 1e6, "MB/s",
			"per message: EVP_EncryptInit_ex (new 12-B IV) + Update + Final + get 16-B tag; no AAD");
	}
	return bench_failed;
}
