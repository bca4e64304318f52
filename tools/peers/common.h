/* Shared helpers for the peer benchmark harnesses (tools/peers/ C files).
 * Each harness prints tab-separated lines that scripts/bench-peers.sh turns into a table:
 *   RESULT <op> <peer> <value> <unit> <what one call includes>
 *   CHECK  <name> ok|FAIL <detail>
 *   NOTE   <text>
 * Timing: wall clock (CLOCK_MONOTONIC), batches doubled until one batch takes >= 20 ms,
 * then repeated until BENCH_SECONDS (default 2) have passed. The script pins with taskset. */
#ifndef GMHSM_PEERS_COMMON_H
#define GMHSM_PEERS_COMMON_H
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dlfcn.h>

static double bench_secs = 2.0;
static int bench_failed = 0;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void bench_init(void)
{
	const char *s = getenv("BENCH_SECONDS");
	if (s && atof(s) > 0) bench_secs = atof(s);
}

/* op returns 1 on success. Returns calls per second, or -1 if a call failed. */
static double bench_run(int (*op)(void *), void *arg)
{
	long batch = 1, n = 0;
	double t0, t1, dt;
	/* warm-up + batch sizing */
	for (;;) {
		t0 = now_s();
		for (long i = 0; i < batch; i++)
			if (op(arg) != 1) return -1;
		dt = now_s() - t0;
		if (dt >= 0.02 || batch >= (1L << 30)) break;
		batch *= 2;
	}
	t0 = now_s();
	do {
		for (long i = 0; i < batch; i++)
			if (op(arg) != 1) return -1;
		n += batch;
		t1 = now_s();
	} while (t1 - t0 < bench_secs);
	return (double)n / (t1 - t0);
}

static void result(const char *op, const char *peer, double v, const char *unit, const char *incl)
{
	if (v < 0) {
		printf("FAILED\t%s\t%s\ta call returned an error\n", op, peer);
		bench_failed = 1;
		return;
	}
	printf("RESULT\t%s\t%s\t%.1f\t%s\t%s\n", op, peer, v, unit, incl);
	fflush(stdout);
}

static void check(const char *name, int ok, const char *detail)
{
	printf("CHECK\t%s\t%s\t%s\n", name, ok ? "ok" : "FAIL", detail ? detail : "");
	if (!ok) bench_failed = 1;
	fflush(stdout);
}

static void hex(char *out, const uint8_t *in, size_t n)
{
	static const char h[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = h[in[i] >> 4];
		out[2 * i + 1] = h[in[i] & 15];
	}
	out[2 * n] = 0;
}

static void *lib;
static void *sym(const char *name)
{
	void *p = dlsym(lib, name);
	if (!p) {
		fprintf(stderr, "symbol %s not exported by the library: %s\n", name, dlerror());
		exit(3);
	}
	return p;
}
#define LOAD(var, name) (*(void **)(&var) = sym(name))

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) return 0;
	int ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok;
}

/* Fixed inputs shared by all harnesses so their outputs can be compared. */
static const uint8_t SM4_KAT_KEY[16] = {0x01,0x23,0x45,0x67,0x89,0xab,0xcd,0xef,0xfe,0xdc,0xba,0x98,0x76,0x54,0x32,0x10};
/* GB/T 32907-2016 example 1: E_K(K) with the key above */
static const uint8_t SM4_KAT_CT[16] = {0x68,0x1e,0xdf,0x34,0xd2,0x06,0x96,0x5e,0x86,0xb3,0xe9,0x4f,0x53,0x6e,0x42,0x46};
static const uint8_t GCM_IV[12] = {0,1,2,3,4,5,6,7,8,9,10,11};
static const char SM2_ID[] = "1234567812345678";
#endif
