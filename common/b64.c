/* Base64 with the standard alphabet and padding, strict on input. Decoding
 * never leaves partial plaintext in unlocked memory. */
#include "common/common.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_encode(const void *src, size_t n, char **out)
{
	const uint8_t *s = src;
	size_t olen = (n + 2) / 3 * 4;
	char *o = malloc(olen + 1);
	if (!o)
		return -ENOMEM;
	size_t j = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		o[j++] = b64_alphabet[(v >> 18) & 63];
		o[j++] = b64_alphabet[(v >> 12) & 63];
		o[j++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		o[j++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
	}
	o[j] = '\0';
	*out = o;
	return 0;
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int b64_decode(const char *src, size_t srclen, uint8_t *out, size_t cap, size_t *outlen)
{
	if (srclen % 4)
		return -EINVAL;
	size_t need = srclen / 4 * 3;
	if (srclen >= 1 && src[srclen - 1] == '=')
		need--;
	if (srclen >= 2 && src[srclen - 2] == '=')
		need--;
	if (need > cap)
		return -ENOBUFS;
	/* v and x hold key bits: one copy each, wiped on every way out. */
	int v[4];
	uint32_t x = 0;
	int rc = 0;
	size_t j = 0;
	for (size_t i = 0; i < srclen && !rc; i += 4) {
		bool last = i + 4 == srclen;
		for (int k = 0; k < 4 && !rc; k++) {
			char c = src[i + k];
			if (c == '=' && last && k >= 2) {
				v[k] = -2;
				continue;
			}
			v[k] = b64_val(c);
			if (v[k] < 0)
				rc = -EINVAL;
		}
		if (!rc && v[2] == -2 && v[3] != -2)
			rc = -EINVAL;
		if (rc)
			break;
		x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)(v[2] < 0 ? 0 : v[2]) << 6 | (uint32_t)(v[3] < 0 ? 0 : v[3]);
		out[j++] = x >> 16;
		if (v[2] >= 0)
			out[j++] = (x >> 8) & 0xff;
		if (v[3] >= 0)
			out[j++] = x & 0xff;
	}
	explicit_bzero(v, sizeof(v));
	explicit_bzero(&x, sizeof(x));
	if (rc)
		return rc;
	*outlen = j;
	return 0;
}

int b64_decode_secure(const char *src, size_t srclen, struct secbuf *out)
{
	int rc = secbuf_alloc(out, srclen / 4 * 3 + 3);
	if (rc < 0)
		return rc;
	rc = b64_decode(src, srclen, out->data, out->cap, &out->len);
	if (rc < 0)
		secbuf_free(out);
	return rc;
}
