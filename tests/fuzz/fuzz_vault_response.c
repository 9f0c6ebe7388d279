/*
 * libFuzzer target for the Vault response parser: the secret extraction
 * (vault_json_extract_secrets) and jansson behind it, then what each call
 * reads from the answer (decrypt, datakey, batch decrypt/rewrap, a login).
 *
 * The first byte picks the call (and a batch size); the rest is the body.
 * Findings, besides crashes and sanitizer reports: jansson holding the value
 * of a secret key (anything but null or one of our "#k" placeholders under a
 * key that jansson reads as "plaintext", "client_token", "id" or
 * "accessor": the escaped-key hole of issue 10 item 8); an item message with
 * a control character; a plaintext longer than its Base64 allows.
 */
#include "vault/vault_int.h"

#include <stdlib.h>

static const char *const plaintext_keys[] = {"plaintext", NULL};
static const char *const token_keys[] = {"client_token", "id", "accessor", NULL};

/* Every value under a secret key, at any depth, is null or a placeholder. */
static void check_no_secret(json_t *j, const char *const *keys, size_t nsecrets)
{
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(j)) {
		json_object_foreach(j, k, v) {
			for (const char *const *s = keys; s && *s; s++) {
				if (strcmp(k, *s))
					continue;
				const char *str = json_string_value(v);
				uint64_t idx;
				if (!json_is_null(v) &&
				    (!str || str[0] != '#' || parse_u64(str + 1, &idx) < 0 || idx >= nsecrets))
					abort();
			}
			check_no_secret(v, keys, nsecrets);
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			check_no_secret(v, keys, nsecrets);
	}
}

static void check_msg(const char *m)
{
	for (; *m; m++)
		if ((unsigned char)*m < 0x20)
			abort();
}

static struct vault_client *client(void)
{
	static struct vault_client *vc;
	if (!vc) {
		struct vault_config cfg;
		struct werr err = {0};
		vault_config_defaults(&cfg);
		if (vault_config_finish(&cfg, &err) < 0 || vault_client_new(&cfg, NULL, &vc, &err) < 0)
			abort();
		vault_config_free(&cfg);
	}
	return vc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct wlog quiet = {.out = NULL, .level = WLOG_ERROR, .prog = "fuzz"};
	if (size < 1)
		return 0;
	unsigned mode = data[0] % 5, nitems = 1 + (data[0] >> 3) % 8;
	data++;
	size--;
	const char *const *keys = mode == 4 ? token_keys : mode == 3 ? NULL : plaintext_keys;
	struct vault_response r = {0};
	struct werr err = {0};
	if (vault_response_parse(data, size, keys, &r) < 0 || !r.json) {
		vault_response_clear(&r);
		return 0;
	}
	check_no_secret(r.json, keys, r.nsecrets);
	struct secbuf pt = {0};
	char *ct = NULL;
	unsigned ver = 0;
	struct vault_batch_item items[8];
	memset(items, 0, sizeof(items));
	switch (mode) {
	case 0:
		if (vault_decrypt_answer(&r, "transit/decrypt/k", &pt, &err) == 0 && pt.len > size)
			abort();
		secbuf_free(&pt);
		break;
	case 1:
		if (vault_datakey_answer(&r, "transit/datakey/plaintext/k", 512, &pt, &ct, &ver, &err) == 0 &&
		    (pt.len != 64 || !ct || strncmp(ct, "vault:v", 7)))
			abort();
		secbuf_free(&pt);
		free(ct);
		break;
	case 2:
	case 3:
		if (vault_batch_answer(&r, "transit/x/k", mode == 2, items, nitems, &quiet, &err) == 0)
			for (unsigned i = 0; i < nitems; i++)
				check_msg(items[i].msg);
		vault_batch_items_clear(items, nitems);
		break;
	case 4:
		(void)vault_auth_answer(client(), &r, "auth/approle/login", true, &err);
		break;
	}
	if (err.msg[0] && strchr(err.msg, '\n'))
		abort();
	vault_response_clear(&r);
	return 0;
}
