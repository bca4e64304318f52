/* SoftHSM2 peer benchmark through PKCS#11: dlopen()s libsofthsm2.so and calls the C_* entry points
 * it exports (declared by hand below from PKCS#11 v2.40; no pkcs11.h needed). The token must have
 * been initialised by softhsm2-util under $SOFTHSM2_CONF (scripts/bench-peers.sh does this in a
 * temporary directory). Keys are session objects generated on the token.
 *
 * Usage: softhsm_bench LIB.so USER_PIN OUTDIR
 * OUTDIR receives msg.bin, rsa_n.hex, rsa_sig.bin, ec_point.hex, ec_sig.hex for an OpenSSL cross-check. */
#include "common.h"

typedef unsigned long CK_ULONG, CK_RV, CK_SLOT_ID, CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_FLAGS;
typedef unsigned char CK_BBOOL;
typedef struct { CK_ULONG type; void *pValue; CK_ULONG ulValueLen; } CK_ATTRIBUTE;
typedef struct { CK_ULONG mechanism; void *pParameter; CK_ULONG ulParameterLen; } CK_MECHANISM;

#define CKR_OK 0UL
#define CKF_RW_SESSION 2UL
#define CKF_SERIAL_SESSION 4UL
#define CKU_USER 1UL
#define CKA_CLASS 0x000UL
#define CKA_TOKEN 0x001UL
#define CKA_PRIVATE 0x002UL
#define CKA_SENSITIVE 0x103UL
#define CKA_SIGN 0x108UL
#define CKA_VERIFY 0x10AUL
#define CKA_MODULUS 0x120UL
#define CKA_MODULUS_BITS 0x121UL
#define CKA_PUBLIC_EXPONENT 0x122UL
#define CKA_EC_PARAMS 0x180UL
#define CKA_EC_POINT 0x181UL
#define CKM_RSA_PKCS_KEY_PAIR_GEN 0x0000UL
#define CKM_SHA256_RSA_PKCS 0x0040UL
#define CKM_EC_KEY_PAIR_GEN 0x1040UL
#define CKM_ECDSA 0x1041UL
#define CKM_ECDSA_SHA256 0x1044UL
#define CKM_SHA256 0x0250UL

static CK_RV (*C_Initialize)(void *);
static CK_RV (*C_Finalize)(void *);
static CK_RV (*C_GetSlotList)(CK_BBOOL, CK_SLOT_ID *, CK_ULONG *);
static CK_RV (*C_OpenSession)(CK_SLOT_ID, CK_FLAGS, void *, void *, CK_SESSION_HANDLE *);
static CK_RV (*C_Login)(CK_SESSION_HANDLE, CK_ULONG, const uint8_t *, CK_ULONG);
static CK_RV (*C_GenerateKeyPair)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_ATTRIBUTE *, CK_ULONG, CK_ATTRIBUTE *, CK_ULONG,
	CK_OBJECT_HANDLE *, CK_OBJECT_HANDLE *);
static CK_RV (*C_GetAttributeValue)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE *, CK_ULONG);
static CK_RV (*C_SignInit)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE);
static CK_RV (*C_Sign)(CK_SESSION_HANDLE, const uint8_t *, CK_ULONG, uint8_t *, CK_ULONG *);
static CK_RV (*C_VerifyInit)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE);
static CK_RV (*C_Verify)(CK_SESSION_HANDLE, const uint8_t *, CK_ULONG, const uint8_t *, CK_ULONG);
static CK_RV (*C_DigestInit)(CK_SESSION_HANDLE, CK_MECHANISM *);
static CK_RV (*C_Digest)(CK_SESSION_HANDLE, const uint8_t *, CK_ULONG, uint8_t *, CK_ULONG *);

static CK_SESSION_HANDLE sess;
static uint8_t msg[32];

struct signop {
	CK_MECHANISM mech;
	CK_OBJECT_HANDLE priv, pub;
	uint8_t sig[512];
	CK_ULONG siglen;
	int prehash; /* hash with C_Digest(CKM_SHA256) first, then sign the digest (CKM_ECDSA) */
};

static const uint8_t *tbs(struct signop *s, uint8_t d[32], CK_ULONG *n)
{
	CK_MECHANISM m = {CKM_SHA256, NULL, 0};
	*n = sizeof(msg);
	if (!s->prehash) return msg;
	*n = 32;
	if (C_DigestInit(sess, &m) != CKR_OK || C_Digest(sess, msg, sizeof(msg), d, n) != CKR_OK) return NULL;
	return d;
}

static int op_sign(void *a)
{
	struct signop *s = a;
	uint8_t d[32];
	CK_ULONG n;
	const uint8_t *in = tbs(s, d, &n);
	s->siglen = sizeof(s->sig);
	if (!in || C_SignInit(sess, &s->mech, s->priv) != CKR_OK) return 0;
	return C_Sign(sess, in, n, s->sig, &s->siglen) == CKR_OK;
}

static int op_verify(void *a)
{
	struct signop *s = a;
	uint8_t d[32];
	CK_ULONG n;
	const uint8_t *in = tbs(s, d, &n);
	if (!in || C_VerifyInit(sess, &s->mech, s->pub) != CKR_OK) return 0;
	return C_Verify(sess, in, n, s->sig, s->siglen) == CKR_OK;
}

static int write_hex(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char *h = malloc(2 * n + 2);
	hex(h, p, n);
	strcat(h, "\n");
	int ok = write_file(dir, name, h, strlen(h));
	free(h);
	return ok;
}

int main(int argc, char **argv)
{
	const char *P = "SoftHSM 2.6.1 (PKCS#11, Debian)";
	CK_RV rv;
	if (argc != 4) {
		fprintf(stderr, "usage: %s LIB.so USER_PIN OUTDIR\n", argv[0]);
		return 2;
	}
	bench_init();
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
		return 3;
	}
	LOAD(C_Initialize, "C_Initialize");
	LOAD(C_Finalize, "C_Finalize");
	LOAD(C_GetSlotList, "C_GetSlotList");
	LOAD(C_OpenSession, "C_OpenSession");
	LOAD(C_Login, "C_Login");
	LOAD(C_GenerateKeyPair, "C_GenerateKeyPair");
	LOAD(C_GetAttributeValue, "C_GetAttributeValue");
	LOAD(C_SignInit, "C_SignInit");
	LOAD(C_Sign, "C_Sign");
	LOAD(C_VerifyInit, "C_VerifyInit");
	LOAD(C_Verify, "C_Verify");
	LOAD(C_DigestInit, "C_DigestInit");
	LOAD(C_Digest, "C_Digest");

	CK_SLOT_ID slots[16];
	CK_ULONG nslots = 16;
	if ((rv = C_Initialize(NULL)) != CKR_OK || (rv = C_GetSlotList(1, slots, &nslots)) != CKR_OK || nslots == 0) {
		fprintf(stderr, "C_Initialize/C_GetSlotList: rv=0x%lx, %lu slots with a token\n", rv, nslots);
		return 1;
	}
	if ((rv = C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess)) != CKR_OK
		|| (rv = C_Login(sess, CKU_USER, (const uint8_t *)argv[2], strlen(argv[2]))) != CKR_OK) {
		fprintf(stderr, "C_OpenSession/C_Login: rv=0x%lx\n", rv);
		return 1;
	}
	for (int i = 0; i < 32; i++) msg[i] = (uint8_t)i;
	write_file(argv[3], "msg.bin", msg, sizeof(msg));

	CK_BBOOL t = 1, f = 0;
	static struct signop rsa, ec;
	{
		CK_ULONG bits = 2048;
		uint8_t e[3] = {1, 0, 1};
		CK_MECHANISM gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
		CK_ATTRIBUTE pubt[] = {{CKA_TOKEN, &f, 1}, {CKA_VERIFY, &t, 1}, {CKA_MODULUS_BITS, &bits, sizeof(bits)},
			{CKA_PUBLIC_EXPONENT, e, 3}};
		CK_ATTRIBUTE privt[] = {{CKA_TOKEN, &f, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1}, {CKA_SIGN, &t, 1}};
		rv = C_GenerateKeyPair(sess, &gen, pubt, 4, privt, 4, &rsa.pub, &rsa.priv);
		check("softhsm RSA-2048 key pair generation", rv == CKR_OK, "");
		if (rv != CKR_OK) return 1;
		rsa.mech.mechanism = CKM_SHA256_RSA_PKCS;
		uint8_t n[256];
		CK_ATTRIBUTE na = {CKA_MODULUS, n, sizeof(n)};
		int ok = C_GetAttributeValue(sess, rsa.pub, &na, 1) == CKR_OK && na.ulValueLen == 256
			&& op_sign(&rsa) && op_verify(&rsa);
		check("softhsm RSA sign/verify round trip", ok, "");
		write_hex(argv[3], "rsa_n.hex", n, 256);
		write_file(argv[3], "rsa_sig.bin", rsa.sig, rsa.siglen);
		rsa.sig[7] ^= 1;
		check("softhsm corrupted RSA signature is rejected", !op_verify(&rsa), "");
		rsa.sig[7] ^= 1;
	}
	{
		static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
		CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
		CK_ATTRIBUTE pubt[] = {{CKA_TOKEN, &f, 1}, {CKA_VERIFY, &t, 1}, {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
		CK_ATTRIBUTE privt[] = {{CKA_TOKEN, &f, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1}, {CKA_SIGN, &t, 1}};
		rv = C_GenerateKeyPair(sess, &gen, pubt, 3, privt, 4, &ec.pub, &ec.priv);
		check("softhsm EC P-256 key pair generation", rv == CKR_OK, "");
		if (rv != CKR_OK) return 1;
		ec.mech.mechanism = CKM_ECDSA_SHA256;
		uint8_t pt[80];
		CK_ATTRIBUTE pa = {CKA_EC_POINT, pt, sizeof(pt)};
		int ok = C_GetAttributeValue(sess, ec.pub, &pa, 1) == CKR_OK;
		if (ok && !op_sign(&ec)) {
			printf("NOTE\tSoftHSM: CKM_ECDSA_SHA256 not available; using C_Digest(CKM_SHA256) + CKM_ECDSA\n");
			ec.mech.mechanism = CKM_ECDSA;
			ec.prehash = 1;
		}
		ok = ok && op_sign(&ec) && op_verify(&ec);
		check("softhsm ECDSA P-256 sign/verify round trip", ok, "");
		/* CKA_EC_POINT is a DER OCTET STRING around 04||x||y */
		if (ok && pa.ulValueLen == 67 && pt[0] == 0x04 && pt[1] == 65) write_hex(argv[3], "ec_point.hex", pt + 2, 65);
		write_hex(argv[3], "ec_sig.hex", ec.sig, ec.siglen);
		ec.sig[7] ^= 1;
		check("softhsm corrupted ECDSA signature is rejected", !op_verify(&ec), "");
		ec.sig[7] ^= 1;
	}
	result("RSA-2048 sign (PKCS#1 v1.5, SHA-256), 32 B msg", P, bench_run(op_sign, &rsa), "ops/s",
		"C_SignInit(CKM_SHA256_RSA_PKCS) + C_Sign: SHA-256, PKCS#1 v1.5 padding, CRT private op (SoftHSM's OpenSSL 3 backend)");
	result("RSA-2048 verify (PKCS#1 v1.5, SHA-256), 32 B msg", P, bench_run(op_verify, &rsa), "ops/s",
		"C_VerifyInit + C_Verify");
	result("ECDSA P-256 sign (SHA-256), 32 B msg", P, bench_run(op_sign, &ec), "ops/s", ec.prehash
		? "C_DigestInit + C_Digest (SHA-256) + C_SignInit(CKM_ECDSA) + C_Sign (SoftHSM's OpenSSL 3 backend), raw r||s"
		: "C_SignInit(CKM_ECDSA_SHA256) + C_Sign: SHA-256 + ECDSA (SoftHSM's OpenSSL 3 backend), raw r||s");
	result("ECDSA P-256 verify (SHA-256), 32 B msg", P, bench_run(op_verify, &ec), "ops/s",
		ec.prehash ? "C_Digest (SHA-256) + C_VerifyInit(CKM_ECDSA) + C_Verify" : "C_VerifyInit + C_Verify");
	C_Finalize(NULL);
	return bench_failed;
}
