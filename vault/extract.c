/*
 * Reading a Vault answer without letting jansson see a secret: the raw body
 * (in locked memory) is walked once; the string values of the call's secret
 * keys ("plaintext"; "client_token", "id", "accessor") move into their own
 * secbufs and become "#k" placeholders; only then does jansson parse the
 * redacted text. Keys are compared as a JSON parser reads them, escapes and
 * all. Pure code: no I/O (the fuzz target tests/fuzz/fuzz_vault_response
 * drives it).
 */
#include "vault/vault_int.h"

#include <ctype.h>

static int grow(char **out, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap * 2 > need ? *cap * 2 : need;
	char *n = realloc(*out, nc);
	if (!n)
		return -ENOMEM;
	*out = n;
	*cap = nc;
	return 0;
}

/* Index just past the closing quote of the string starting at in[i] == '"',
 * or 0 when unterminated. */
static size_t string_end(const char *in, size_t len, size_t i)
{
	for (size_t j = i + 1; j < len; j++) {
		if (in[j] == '\\')
			j++;
		else if (in[j] == '"')
			return j + 1;
	}
	return 0;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Decodes the body of a JSON string (between the quotes, raw[0..n)) as a
 * JSON parser would: every escape, \uXXXX (with surrogate pairs) as UTF-8.
 * The result is never longer than n. -EINVAL for what jansson would reject.
 */
static int json_unescape(const char *raw, size_t n, char *out, size_t *outlen)
{
	size_t o = 0;
	for (size_t j = 0; j < n; j++) {
		char c = raw[j];
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (++j >= n)
			return -EINVAL;
		static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
		const char *f = strchr(from, raw[j]);
		if (f && raw[j]) {
			out[o++] = to[f - from];
			continue;
		}
		unsigned cp, lo;
		if (raw[j] != 'u' || j + 4 >= n + 0 || hex4(raw + j + 1, &cp) < 0)
			return -EINVAL;
		j += 4;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return -EINVAL; /* a lone low surrogate */
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (j + 6 >= n || raw[j + 1] != '\\' || raw[j + 2] != 'u' ||
			    hex4(raw + j + 3, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
				return -EINVAL;
			j += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (cp < 0x80) {
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			out[o++] = (char)(0xc0 | (cp >> 6));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			out[o++] = (char)(0xe0 | (cp >> 12));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		} else {
			out[o++] = (char)(0xf0 | (cp >> 18));
			out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	*outlen = o;
	return 0;
}

/* Whether the JSON string in[i..e) (quotes included) names one of keys, as
 * jansson would read it: "plain\u0074ext" is "plaintext". <0 on a bad escape. */
static int is_secret_key(const char *in, size_t i, size_t e, const char *const *keys)
{
	char name[128];
	size_t n = e - i - 2, nl;
	if (!keys)
		return 0;
	if (n >= sizeof(name)) {
		/* Escapes never make a string longer, and no secret key is this
		 * long even spelt with \u escapes only (6 bytes a character). */
		for (const char *const *k = keys; *k; k++)
			if (strlen(*k) * 6 >= n)
				return -EINVAL; /* cannot happen for wrapd's short keys */
		return 0;
	}
	if (json_unescape(in + i + 1, n, name, &nl) < 0)
		return -EINVAL;
	for (const char *const *k = keys; *k; k++)
		if (strlen(*k) == nl && !memcmp(name, *k, nl))
			return 1;
	return 0;
}

int vault_json_extract_secrets(const char *in, size_t len, const char *const *keys, char **out,
			       struct secbuf *secrets, size_t max_secrets, size_t *nsecrets)
{
	size_t cap = len + 64, o = 0;
	char *buf = malloc(cap);
	int rc = 0;
	*nsecrets = 0;
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		if (in[i] != '"') {
			if ((rc = grow(&buf, &cap, o + 2)) < 0)
				goto fail;
			buf[o++] = in[i++];
			continue;
		}
		size_t e = string_end(in, len, i);
		if (!e) { /* unterminated: leave it to the JSON parser to reject */
			rc = -EINVAL;
			goto fail;
		}
		if ((rc = grow(&buf, &cap, o + (e - i) + 1)) < 0)
			goto fail;
		memcpy(buf + o, in + i, e - i);
		o += e - i;
		/* Is this string a key of one of the secret fields? */
		size_t k = e;
		while (k < len && isspace((unsigned char)in[k]))
			k++;
		int secret = 0;
		if (k < len && in[k] == ':' && (secret = is_secret_key(in, i, e, keys)) < 0) {
			rc = -EINVAL;
			goto fail;
		}
		i = e;
		if (!secret)
			continue;
		size_t v = k + 1;
		while (v < len && isspace((unsigned char)in[v]))
			v++;
		if (v + 4 <= len && !memcmp(in + v, "null", 4))
			continue; /* nothing secret to move */
		if (v >= len || in[v] != '"') {
			/* A number, object or array where a secret belongs: jansson
			 * would hold whatever is inside it. Refuse the answer. */
			rc = -EINVAL;
			goto fail;
		}
		size_t ve = string_end(in, len, v);
		if (!ve) {
			rc = -EINVAL;
			goto fail;
		}
		if (*nsecrets >= max_secrets) {
			rc = -E2BIG;
			goto fail;
		}
		struct secbuf *sb = &secrets[*nsecrets];
		if ((rc = secbuf_alloc(sb, ve - v)) < 0)
			goto fail;
		for (size_t j = v + 1; j < ve - 1; j++) {
			char c = in[j];
			if (c == '\\') {
				/* Base64 and tokens never need escapes; allow the
				 * harmless "\/" that some encoders emit. */
				if (in[j + 1] != '/') {
					secbuf_free(sb);
					rc = -EINVAL;
					goto fail;
				}
				c = in[++j];
			}
			sb->data[sb->len++] = (uint8_t)c;
		}
		sb->data[sb->len] = '\0';
		(*nsecrets)++;
		if ((rc = grow(&buf, &cap, o + (k - e) + 32)) < 0)
			goto fail;
		memcpy(buf + o, in + e, k - e + 1); /* whitespace and ':' */
		o += k - e + 1;
		o += (size_t)snprintf(buf + o, 32, " \"#%zu\"", *nsecrets - 1);
		i = ve;
	}
	buf[o] = '\0';
	*out = buf;
	return 0;
fail:
	for (size_t s = 0; s < *nsecrets; s++)
		secbuf_free(&secrets[s]);
	*nsecrets = 0;
	free(buf);
	return rc;
}

struct secbuf *vault_secret_ref(json_t *v, struct secbuf *secrets, size_t nsecrets)
{
	const char *s = json_string_value(v);
	uint64_t idx;
	if (!s || s[0] != '#' || parse_u64(s + 1, &idx) < 0 || idx >= nsecrets)
		return NULL;
	return &secrets[idx];
}

void vault_response_clear(struct vault_response *r)
{
	if (r->json)
		json_decref(r->json);
	for (size_t i = 0; i < r->nsecrets; i++)
		secbuf_free(&r->secrets[i]);
	free(r->secrets);
	memset(r, 0, sizeof(*r));
}

int vault_response_parse(const uint8_t *body, size_t len, const char *const *secret_keys,
			 struct vault_response *resp)
{
	if (!len)
		return 0;
	resp->secrets = calloc(VAULT_MAX_SECRETS, sizeof(*resp->secrets));
	if (!resp->secrets)
		return -ENOMEM;
	_cleanup_free_ char *redacted = NULL;
	int rc = vault_json_extract_secrets((const char *)body, len, secret_keys, &redacted,
					    resp->secrets, VAULT_MAX_SECRETS, &resp->nsecrets);
	if (rc < 0)
		return rc;
	json_error_t jerr;
	resp->json = json_loadb(redacted, strlen(redacted), JSON_REJECT_DUPLICATES, &jerr);
	return resp->json ? 0 : -EBADMSG;
}
