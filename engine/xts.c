/* engine: AES-256-XTS per sector through OpenSSL EVP, and the journal hashes. */
#include "engine/internal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

bool xts_key_halves_equal(const struct secbuf *vk)
{
	if (!vk || vk->len != 64)
		return false;
	return ct_memcmp(vk->data, vk->data + 32, 32) == 0;
}

void xts_key_free(struct xts_key *k)
{
	if (!k)
		return;
	EVP_CIPHER_CTX_free(k->enc);
	EVP_CIPHER_CTX_free(k->dec);
	k->enc = k->dec = NULL;
}

int xts_key_init(struct xts_key *k, const struct secbuf *vk, bool for_encrypt)
{
	k->enc = k->dec = NULL;
	if (!vk || vk->len != 64)
		return -EINVAL;
	bool dup = xts_key_halves_equal(vk);
	if (dup && for_encrypt)
		return -EINVAL;
	EVP_CIPHER_CTX *e = NULL, *d = EVP_CIPHER_CTX_new();
	if (!d)
		return -ENOMEM;
	if (EVP_CipherInit_ex(d, EVP_aes_256_xts(), NULL, vk->data, NULL, 0) != 1)
		goto fail;
	EVP_CIPHER_CTX_set_padding(d, 0);
	if (!dup) {
		e = EVP_CIPHER_CTX_new();
		if (!e || EVP_CipherInit_ex(e, EVP_aes_256_xts(), NULL, vk->data, NULL, 1) != 1)
			goto fail;
		EVP_CIPHER_CTX_set_padding(e, 0);
	}
	k->enc = e;
	k->dec = d;
	return 0;
fail:
	EVP_CIPHER_CTX_free(e);
	EVP_CIPHER_CTX_free(d);
	return -EINVAL;
}

int xts_crypt(struct xts_key *k, bool enc, uint8_t *buf, size_t len, uint32_t sector_size,
	      uint64_t iv512)
{
	EVP_CIPHER_CTX *c = enc ? k->enc : k->dec;
	if (!c || sector_size < 512 || (sector_size & (sector_size - 1)) || len % sector_size)
		return -EINVAL;
	uint64_t step = sector_size / 512;
	uint8_t iv[16] = {0};
	for (size_t off = 0; off < len; off += sector_size, iv512 += step) {
		le64_store(iv, iv512);
		int outl = 0;
		if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, -1) != 1 ||
		    EVP_CipherUpdate(c, buf + off, &outl, buf + off, (int)sector_size) != 1 ||
		    outl != (int)sector_size)
			return -EIO;
	}
	return 0;
}

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

uint64_t engine_hash512(const uint8_t *p, uint64_t seed)
{
	uint64_t a = seed ^ 0x9e3779b97f4a7c15ULL, b = seed ^ 0xc2b2ae3d27d4eb4fULL;
	uint64_t c = rotl64(seed, 17) ^ 0x165667b19e3779f9ULL, d = ~seed;
	for (size_t i = 0; i < 512; i += 32) {
		uint64_t w[4];
		memcpy(w, p + i, 32);
		a = rotl64((a ^ w[0]) * 0x87c37b91114253d5ULL, 31);
		b = rotl64((b ^ w[1]) * 0x4cf5ad432745937fULL, 29);
		c = rotl64((c ^ w[2]) * 0x9e3779b185ebca87ULL, 27);
		d = rotl64((d ^ w[3]) * 0xc2b2ae3d27d4eb4fULL, 33);
	}
	return fmix64(a ^ rotl64(b, 13) ^ rotl64(c, 29) ^ rotl64(d, 47) ^ 512);
}

/* ---- keyed journal hash: SipHash-2-4 (Aumasson, Bernstein), a PRF ----------------------- */

#define SIPROUND                                                                              \
	do {                                                                                  \
		v0 += v1;                                                                     \
		v1 = rotl64(v1, 13);                                                          \
		v1 ^= v0;                                                                     \
		v0 = rotl64(v0, 32);                                                          \
		v2 += v3;                                                                     \
		v3 = rotl64(v3, 16);                                                          \
		v3 ^= v2;                                                                     \
		v0 += v3;                                                                     \
		v3 = rotl64(v3, 21);                                                          \
		v3 ^= v0;                                                                     \
		v2 += v1;                                                                     \
		v1 = rotl64(v1, 17);                                                          \
		v1 ^= v2;                                                                     \
		v2 = rotl64(v2, 32);                                                          \
	} while (0)

uint64_t engine_siphash(const uint8_t key[16], const uint8_t *p, size_t len)
{
	uint64_t k0 = le64_load(key), k1 = le64_load(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t m = le64_load(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int engine_journal_key(const struct secbuf *vk, uint64_t seed, struct secbuf *key)
{
	static const char label[] = "wrapd-journal-v1";
	uint8_t msg[sizeof(label) - 1 + 8], mac[32];
	unsigned maclen = sizeof(mac);
	if (!vk || vk->len != 64)
		return -EINVAL;
	memcpy(msg, label, sizeof(label) - 1);
	le64_store(msg + sizeof(label) - 1, seed);
	int rc = secbuf_alloc(key, 16);
	if (rc < 0)
		return rc;
	if (!HMAC(EVP_sha256(), vk->data, (int)vk->len, msg, sizeof(msg), mac, &maclen))
		rc = -EIO;
	else if ((rc = secbuf_append(key, mac, 16)) < 0)
		secbuf_free(key);
	explicit_bzero(mac, sizeof(mac));
	return rc;
}

uint64_t engine_jhash512(const uint8_t *key, uint64_t seed, const uint8_t *p)
{
	return key ? engine_siphash(key, p, 512) : engine_hash512(p, seed);
}
