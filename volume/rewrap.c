/*
 * rewrap: after the Transit key was rotated, re-encrypt each wrapped VK under
 * the key's latest version (Vault never shows us the plaintext) and write the
 * new ciphertext and key_version into the token. The data area is not
 * touched, so this is safe while the volume is open: dm-crypt never reads
 * the header again.
 */
#include "volume/internal.h"

/*
 * A rekey in progress keeps the new VK's wrapped form in its conversion
 * state (the engine's "new_token"). Rewrap it along with the token, or
 * raising the Transit key's min_decryption_version strands the volume: the
 * resume could no longer unwrap the key half of the device is under.
 */
static int rewrap_conversion_key(const struct volume_ctx *ctx, struct vgroups *gs,
				 struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	json_t *state = NULL;
	int rc = luks2_conversion_get(hdr, &state, err);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return werr_prefix(err, rc, "%s", what);
	json_t *nt = json_object_get(state, "new_token");
	const char *ct = json_string_value(json_object_get(nt, "ciphertext"));
	const char *cx = json_string_value(json_object_get(nt, "context"));
	if (!nt) {
		json_decref(state);
		return 0;
	}
	if (!ct || !cx || strncmp(ct, "vault:v", 7)) {
		json_decref(state);
		return werr_set(err, -EUCLEAN, "%s: the rekey in progress has no usable new wrapped key; 'wrapctl inspect %s' shows its state",
				what, what);
	}
	struct wrapd_token t = {
		.vault_mount = (char *)json_string_value(json_object_get(nt, "vault_mount")),
		.vault_key = (char *)json_string_value(json_object_get(nt, "vault_key")),
	};
	if (!t.vault_mount || !*t.vault_mount || !t.vault_key || !*t.vault_key) {
		t.vault_mount = ctx->vcfg && ctx->vcfg->mount ? ctx->vcfg->mount : VAULT_DEFAULT_MOUNT;
		t.vault_key = ctx->vcfg && ctx->vcfg->key ? ctx->vcfg->key : VAULT_DEFAULT_KEY;
	}
	size_t g;
	char *nct = NULL;
	unsigned ver = 0;
	rc = vgroups_get(ctx, gs, &t, &g, err);
	if (rc == 0)
		rc = vault_rewrap(gs->g[g].vc, ct, cx, &nct, &ver, err);
	if (rc == 0) {
		json_object_set_new(nt, "ciphertext", json_string(nct));
		json_object_set_new(nt, "key_version", json_integer(ver));
		rc = luks2_conversion_set(hdr, state, err);
	}
	free(nct);
	json_decref(state);
	if (rc < 0)
		return werr_prefix(err, rc, "%s: rewrapping the new key of the rekey in progress failed", what);
	return 0;
}

static void res_set(struct volume_rewrap_result *r, int rc, const char *msg)
{
	r->rc = rc;
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

int volume_rewrap(const struct volume_ctx *ctx, const char *const *devices,
		  const char *const *headers, size_t n, struct volume_rewrap_result *res,
		  struct werr *err)
{
	int r = 0;
	size_t failed = 0;
	int first_rc = 0;
	struct vgroups gs = {0};
	struct vdev *vds = calloc(n ? n : 1, sizeof(*vds));
	size_t *grp = calloc(n ? n : 1, sizeof(*grp));
	struct vault_batch_item *items = calloc(n ? n : 1, sizeof(*items));
	size_t *item_of = calloc(n ? n : 1, sizeof(*item_of));
	bool *ready = calloc(n ? n : 1, sizeof(*ready));
	if (!vds || !grp || !items || !item_of || !ready) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct vdev init = VDEV_INIT;
		vds[i] = init;
		memset(&res[i], 0, sizeof(res[i]));
	}

	/* 1. Lock and read every header; collect the ciphertexts per key. */
	for (size_t i = 0; i < n; i++) {
		struct werr e;
		werr_clear(&e);
		int rr = vdev_open(&vds[i], devices[i], headers ? headers[i] : NULL,
				   VDEV_WRITE | VDEV_LOCK_EX | VDEV_NEED_TOKEN, &e);
		if (rr == 0)
			rr = luks2_check_writable(vds[i].d.hdr, vds[i].d.hdr_path, &e);
		if (rr == 0)
			rr = vgroups_get(ctx, &gs, &vds[i].tok, &grp[i], &e);
		if (rr < 0) {
			res_set(&res[i], rr, werr_str(&e, rr));
			continue;
		}
		res[i].old_version = vds[i].tok.key_version;
		ready[i] = true;
	}

	/* 2. One rewrap request per Transit key. */
	for (size_t g = 0; g < gs.n; g++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			if (!ready[i] || grp[i] != g)
				continue;
			items[m].ciphertext = vds[i].tok.ciphertext;
			items[m].context_b64 = vds[i].tok.context;
			item_of[m++] = i;
		}
		if (!m)
			continue;
		struct werr e;
		werr_clear(&e);
		int rr;
		if (m == 1) {
			rr = vault_rewrap(gs.g[g].vc, items[0].ciphertext, items[0].context_b64,
					  &items[0].new_ciphertext, &items[0].key_version, &e);
			items[0].rc = rr;
			if (rr < 0)
				snprintf(items[0].msg, sizeof(items[0].msg), "%s", werr_str(&e, rr));
			rr = 0;
		} else {
			rr = vault_rewrap_batch(gs.g[g].vc, items, m, &e);
		}
		for (size_t k = 0; k < m; k++) {
			size_t i = item_of[k];
			struct werr e2;
			werr_clear(&e2);
			int ir = rr < 0 ? rr : items[k].rc;
			if (ir < 0) {
				werr_set(&e2, ir, "%s: Vault rewrap failed: %s", vds[i].d.hdr_path,
					 rr < 0 ? werr_str(&e, rr) : items[k].msg);
				res_set(&res[i], ir, e2.msg);
				continue;
			}
			/* 3. Write the token; the VK is unchanged so the digest stays. */
			struct wrapd_token t = vds[i].tok;
			t.ciphertext = items[k].new_ciphertext;
			t.key_version = items[k].key_version;
			ir = wrapd_token_set(vds[i].d.hdr, &t, &e2);
			if (ir == 0)
				ir = rewrap_conversion_key(ctx, &gs, vds[i].d.hdr, vds[i].d.hdr_path, &e2);
			if (ir == 0)
				ir = luks2_hdr_write(luks2_device_hfd(&vds[i].d), vds[i].d.hdr, vds[i].d.hdr_path, &e2);
			if (ir < 0) {
				res_set(&res[i], ir, werr_str(&e2, ir));
				continue;
			}
			res[i].new_version = items[k].key_version;
		}
		vault_batch_items_clear(items, m);
		memset(items, 0, m * sizeof(*items));
	}
out:
	for (size_t i = 0; vds && i < n; i++) {
		vdev_close(&vds[i]);
		if (r == 0 && res[i].rc < 0) {
			failed++;
			if (!first_rc)
				first_rc = res[i].rc;
		}
	}
	vgroups_free(&gs);
	free(vds);
	free(grp);
	free(items);
	free(item_of);
	free(ready);
	if (r < 0)
		return r;
	if (failed)
		return werr_set(err, first_rc, "%zu of %zu volume(s) not rewrapped", failed, n);
	return 0;
}
