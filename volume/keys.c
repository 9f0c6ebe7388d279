/*
 * Volume keys from Vault, for the flows that make or read one outside
 * open/rewrap's batches: format and the conversion engine's key provider.
 * A new VK is Vault's datakey for the configured Transit key, bound to the
 * volume's UUID by the context; unwrapping follows the token's mount/key
 * unless the caller overrode them (vgroups_get).
 */
#include "volume/internal.h"

static int dup_str(char **dst, const char *src)
{
	*dst = strdup(src ? src : "");
	return *dst ? 0 : -ENOMEM;
}

int vkey_new(const struct volume_ctx *ctx, const char *uuid, struct secbuf *vk,
	     struct wrapd_token *tok, struct werr *err)
{
	const struct vault_config *cfg = ctx->vcfg;
	memset(tok, 0, sizeof(*tok));
	if (!cfg)
		return werr_set(err, -EINVAL, "no Vault configuration to get a volume key from");
	struct vault_client *own = NULL, *vc = ctx->vc;
	int rc = 0;
	if (!vc && (rc = vault_client_new(cfg, ctx->log, &own, err)) == 0)
		vc = own;
	if (rc == 0 && vault_context_for_uuid(uuid, &tok->context) < 0)
		rc = werr_set(err, -EINVAL, "cannot build the Vault context for UUID '%s'", uuid);
	if (rc == 0)
		rc = vault_require_derived_key(vc, err);
	if (rc == 0)
		rc = vault_datakey(vc, tok->context, 512, vk, &tok->ciphertext, &tok->key_version, err);
	vault_client_free(own);
	if (rc == 0 && vk->len != WRAPD_VK_BYTES)
		rc = werr_set(err, -EPROTO, "Vault returned a %zu-byte key, expected %d", vk->len,
			      WRAPD_VK_BYTES);
	if (rc == 0 && (dup_str(&tok->vault_addr, cfg->addr) || dup_str(&tok->vault_namespace, cfg->namespace_) ||
			dup_str(&tok->vault_mount, cfg->mount) || dup_str(&tok->vault_key, cfg->key)))
		rc = werr_set(err, -ENOMEM, "out of memory");
	if (rc < 0) {
		secbuf_free(vk);
		wrapd_token_free(tok);
	}
	return rc;
}

int vkey_unwrap(const struct volume_ctx *ctx, struct vgroups *gs, const struct wrapd_token *tok,
		struct secbuf *vk, struct werr *err)
{
	size_t g;
	int rc = vgroups_get(ctx, gs, tok, &g, err);
	if (rc < 0)
		return rc;
	return vault_decrypt(gs->g[g].vc, tok->ciphertext, tok->context, vk, err);
}
