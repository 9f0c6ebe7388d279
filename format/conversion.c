/*
 * The opaque conversion state the engine keeps in a wrapd-conversion token.
 */
#include "format/internal.h"

int luks2_conversion_get(const struct luks2_hdr *hdr, json_t **state, struct werr *err)
{
	json_t *tokens = json_object_get(hdr->json, "tokens");
	unsigned id = 0;
	int count;
	*state = NULL;
	if (luks2_token_find(tokens, WRAPD_CONVERSION_TOKEN_TYPE, &id, &count) < 0)
		return -ENOENT;
	if (count > 1)
		return werr_set(err, -EINVAL, "%d wrapd-conversion tokens: ambiguous", count);
	json_t *s = json_object_get(luks2_obj_get_id(tokens, id), "state");
	if (!json_is_object(s))
		return werr_set(err, -EINVAL, "token %u (wrapd-conversion): \"state\" is not an object",
				id);
	*state = json_deep_copy(s);
	return *state ? 0 : -ENOMEM;
}

int luks2_conversion_set(struct luks2_hdr *hdr, const json_t *state, struct werr *err)
{
	if (!state) {
		int rc = luks2_tokens_remove_type(hdr, WRAPD_CONVERSION_TOKEN_TYPE, err);
		return rc == -ENOENT ? 0 : rc;
	}
	if (!json_is_object(state))
		return werr_set(err, -EINVAL, "conversion state must be a JSON object");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *tokens = json_object_get(root, "tokens");
	unsigned id = 0;
	int count;
	json_t *copy = json_deep_copy(state);
	if (luks2_token_find(tokens, WRAPD_CONVERSION_TOKEN_TYPE, &id, &count) == 0) {
		json_object_set_new(luks2_obj_get_id(tokens, id), "state", copy);
	} else {
		int fid = luks2_obj_free_id(tokens, LUKS2_MAX_TOKENS);
		if (fid < 0) {
			json_decref(copy);
			json_decref(root);
			return werr_set(err, -ENOSPC, "all 32 token ids are in use");
		}
		luks2_obj_set_id(tokens, (unsigned)fid,
				 json_pack("{s:s, s:[], s:o}", "type", WRAPD_CONVERSION_TOKEN_TYPE,
					   "keyslots", "state", copy));
	}
	return luks2_hdr_replace_json(hdr, root, err);
}
