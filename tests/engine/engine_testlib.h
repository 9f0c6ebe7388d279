/*
 * Helpers the engine tests share: an in-memory key provider (VKs live only in
 * the test's locked memory, never in argv, files or the environment), test
 * volumes, and an independent AES-XTS check that calls OpenSSL EVP directly
 * with per-sector IVs (not the engine's code).
 */
#ifndef WRAPD_ENGINE_TESTLIB_H
#define WRAPD_ENGINE_TESTLIB_H

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/internal.h"
#include "format/format.h"

#define T_UNUSED __attribute__((unused))
#define MiB (1024ull * 1024)

/* Keys are derived from a per-run seed and their index, so a forked child
 * killed mid-conversion and the parent that resumes agree on every key
 * without passing one anywhere. */
struct tkeys {
	struct secbuf vk[256];
	unsigned n;      /* next index new_key hands out */
	uint64_t seed;
};

static T_UNUSED const struct secbuf *tk_key(struct tkeys *tk, unsigned i)
{
	if (i >= ARRAY_SIZE(tk->vk))
		return NULL;
	struct secbuf *k = &tk->vk[i];
	if (!k->data) {
		uint8_t in[12];
		memcpy(in, &tk->seed, 8);
		memcpy(in + 8, &i, 4);
		if (secbuf_alloc(k, 64) < 0)
			return NULL;
		unsigned len = 64;
		EVP_Digest(in, sizeof(in), k->data, &len, EVP_sha512(), NULL);
		k->len = 64;
	}
	return k;
}

static T_UNUSED int tk_new_key(void *arg, const char *uuid, struct secbuf *vk,
			       struct wrapd_token *tok, struct werr *err)
{
	struct tkeys *tk = arg;
	const struct secbuf *k = tk_key(tk, tk->n);
	if (!k)
		return werr_set(err, -ENOSPC, "test: too many keys");
	if (secbuf_alloc(vk, 64) < 0 || secbuf_append(vk, k->data, 64) < 0)
		return -ENOMEM;
	char ct[64];
	snprintf(ct, sizeof(ct), "vault:v1:test-%u", tk->n);
	tk->n++;
	tok->vault_addr = strdup("http://127.0.0.1:1");
	tok->vault_namespace = strdup("");
	tok->vault_mount = strdup("transit");
	tok->vault_key = strdup("wrapd");
	tok->key_version = 1;
	tok->ciphertext = strdup(ct);
	tok->context = strdup("dGVzdA==");
	return 0;
}

static T_UNUSED int tk_index(const char *ct)
{
	unsigned i;
	if (!ct || sscanf(ct, "vault:v1:test-%u", &i) != 1)
		return -1;
	return (int)i;
}

static T_UNUSED int tk_unwrap(void *arg, const struct wrapd_token *tok, struct secbuf *vk,
			      struct werr *err)
{
	struct tkeys *tk = arg;
	int i = tk_index(tok->ciphertext);
	const struct secbuf *k = i < 0 ? NULL : tk_key(tk, (unsigned)i);
	if (!k)
		return werr_set(err, -ENOKEY, "test: unknown wrapped key");
	if (secbuf_alloc(vk, 64) < 0 || secbuf_append(vk, k->data, 64) < 0)
		return -ENOMEM;
	return 0;
}

static T_UNUSED void tk_free(struct tkeys *tk)
{
	for (unsigned i = 0; i < ARRAY_SIZE(tk->vk); i++)
		secbuf_free(&tk->vk[i]);
	tk->n = 0;
}

/* The VK the volume's header names now (from its token). */
static T_UNUSED const struct secbuf *tk_volume_key(struct tkeys *tk, const char *hdr_path)
{
	int fd = open(hdr_path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct luks2_hdr *h = NULL;
	const struct secbuf *r = NULL;
	if (luks2_hdr_read(fd, hdr_path, &h, NULL, NULL) == 0) {
		struct wrapd_token t = {0};
		if (wrapd_token_get(h, &t, NULL, NULL) == 0) {
			int i = tk_index(t.ciphertext);
			const struct secbuf *k = i < 0 ? NULL : tk_key(tk, (unsigned)i);
			if (k && luks2_vk_verify(h, k, NULL) == 0)
				r = k;
			wrapd_token_free(&t);
		}
		luks2_hdr_free(h);
	}
	close(fd);
	return r;
}

/* A crash sample's settings from the environment, printed with `what`:
 * WRAPD_CRASH_RUNS (default 20), WRAPD_CRASH_ONLY (only that run of the
 * sample, to reproduce one failure; -1: all), WRAPD_CRASH_SEED (default from
 * the clock). Then the scratch directory dir (`prefix`-XXXXXX) on tmpfs when
 * there is one: the crash runs fsync a lot. -1 when it cannot be made. */
static T_UNUSED int t_crash_setup(const char *what, const char *prefix, unsigned *runs,
				  long *only, uint64_t *seed, char *dir, size_t dirlen)
{
	const char *e = getenv("WRAPD_CRASH_RUNS");
	*runs = e ? (unsigned)atoi(e) : 20;
	e = getenv("WRAPD_CRASH_ONLY");
	*only = e ? atol(e) : -1;
	e = getenv("WRAPD_CRASH_SEED");
	*seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
	print_message("%s: WRAPD_CRASH_SEED=%llu WRAPD_CRASH_RUNS=%u\n", what,
		      (unsigned long long)*seed, *runs);
	snprintf(dir, dirlen, "%s/%s-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
		 prefix);
	return mkdtemp(dir) ? 0 : -1;
}

static T_UNUSED uint64_t t_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static T_UNUSED uint8_t *t_read_file(const char *path, uint64_t off, uint64_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	int fd = open(path, O_RDONLY);
	if (fd < 0 || !b || read_full_at(fd, b, len, (off_t)off) < 0) {
		free(b);
		b = NULL;
	}
	if (fd >= 0)
		close(fd);
	return b;
}

static T_UNUSED int t_write_file(const char *path, const uint8_t *data, uint64_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	int r = write_full_at(fd, data, len, 0);
	close(fd);
	return r;
}

static T_UNUSED int t_copy_file(const char *from, const char *to)
{
	struct stat st;
	if (stat(from, &st) < 0)
		return -errno;
	uint8_t *b = t_read_file(from, 0, (uint64_t)st.st_size);
	if (!b)
		return -EIO;
	int r = t_write_file(to, b, (uint64_t)st.st_size);
	free(b);
	return r;
}

/* Random plaintext, with a recognisable header per 512-byte sector. */
static T_UNUSED uint8_t *t_random_data(uint64_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);
	uint64_t s = seed | 1;
	for (uint64_t i = 0; b && i < len; i += 8) {
		uint64_t v = t_rand(&s);
		memcpy(b + i, &v, len - i < 8 ? len - i : 8);
	}
	return b;
}

/* Independent AES-256-XTS: EVP directly, IV = 512-byte sector number from the
 * data segment start, even with 4096-byte sectors. */
static T_UNUSED int t_xts(const struct secbuf *vk, int enc, uint8_t *buf, uint64_t len,
			  uint32_t ss, uint64_t first_pos)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int ok = c != NULL;
	for (uint64_t o = 0; ok && o < len; o += ss) {
		uint8_t iv[16] = {0};
		uint64_t sec = (first_pos + o) / 512;
		for (int i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sec >> (8 * i));
		int outl = 0;
		ok = EVP_CipherInit_ex(c, EVP_aes_256_xts(), NULL, vk->data, iv, enc) == 1 &&
		     EVP_CipherUpdate(c, buf + o, &outl, buf + o, (int)ss) == 1 && outl == (int)ss;
	}
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -EIO;
}

/* Returns 0 when device bytes [dev_off, dev_off+len) decrypt with vk to
 * plain, checking every sector; else the failing position + 1. The data
 * position of dev_off (for the IVs) is dev_off - seg_off. */
static T_UNUSED uint64_t t_check_encrypted_at(const char *dev, uint64_t dev_off, uint64_t pos,
					      const uint8_t *plain, uint64_t len,
					      const struct secbuf *vk, uint32_t ss)
{
	uint8_t *b = t_read_file(dev, dev_off, len);
	if (!b)
		return 1;
	uint64_t bad = 0;
	if (t_xts(vk, 0, b, len, ss, pos) < 0)
		bad = 1;
	for (uint64_t o = 0; !bad && o < len; o += ss)
		if (memcmp(b + o, plain + o, ss))
			bad = o + 1;
	free(b);
	return bad;
}

static T_UNUSED uint64_t t_check_encrypted(const char *dev, uint64_t seg_off, const uint8_t *plain,
					   uint64_t len, const struct secbuf *vk, uint32_t ss)
{
	return t_check_encrypted_at(dev, seg_off, 0, plain, len, vk, ss);
}

static T_UNUSED bool t_hdr_clean(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	struct luks2_hdr *h = NULL;
	bool ok = luks2_hdr_read(fd, path, &h, NULL, NULL) == 0 && !h->req_wrapd_reencrypt &&
		  !h->has_conversion_state && luks2_check_activatable(h, path, NULL) == 0;
	luks2_hdr_free(h);
	close(fd);
	return ok;
}

#endif
