/*
 * Mandatory requirements (wrapd-reencrypt; cryptsetup's reencryption and
 * unknown ones are refused) and whether a header may be written or activated.
 */
#include "format/internal.h"

bool luks2_requirement_has(const struct luks2_hdr *hdr, const char *name)
{
	json_t *m = json_object_get(
		json_object_get(json_object_get(hdr->json, "config"), "requirements"), "mandatory");
	size_t i;
	json_t *v;
	json_array_foreach(m, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return true;
	return false;
}

int luks2_requirement_set(struct luks2_hdr *hdr, const char *name, bool on, struct werr *err)
{
	if (strcmp(name, WRAPD_REQ_REENCRYPT))
		return werr_set(err, -EINVAL, "wrapd only sets its own requirement %s, not \"%s\"",
				WRAPD_REQ_REENCRYPT, name);
	if (luks2_requirement_has(hdr, name) == on)
		return 0;
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *config = json_object_get(root, "config");
	json_t *reqs = json_object_get(config, "requirements");
	if (!reqs) {
		reqs = json_object();
		json_object_set_new(config, "requirements", reqs);
	}
	json_t *m = json_object_get(reqs, "mandatory");
	if (!m) {
		m = json_array();
		json_object_set_new(reqs, "mandatory", m);
	}
	if (on) {
		json_array_append_new(m, json_string(name));
	} else {
		for (size_t i = json_array_size(m); i-- > 0;)
			if (!strcmp(json_string_value(json_array_get(m, i)), name))
				json_array_remove(m, i);
		if (!json_array_size(m))
			json_object_del(reqs, "mandatory");
		if (!json_object_size(reqs))
			json_object_del(config, "requirements");
	}
	return luks2_hdr_replace_json(hdr, root, err);
}

static int check_common(const struct luks2_hdr *hdr, const char *what, const char *verb,
			struct werr *err)
{
	if (hdr->req_cryptsetup_reencrypt)
		return werr_set(err, -EPERM,
				"%s: cryptsetup reencryption is in progress on this header; wrapd will not %s it: finish it with 'cryptsetup reencrypt --resume-only %s'",
				what, verb, what);
	if (hdr->req_unknown)
		return werr_set(err, -EPERM,
				"%s: unknown mandatory LUKS2 requirement \"%s\"; wrapd will not %s it: finish the operation with the tool that set it, or upgrade wrapd",
				what, hdr->req_unknown_name, verb);
	return 0;
}

int luks2_check_writable(const struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	return check_common(hdr, what, "modify", err);
}

int luks2_check_activatable(const struct luks2_hdr *hdr, const char *what, struct werr *err)
{
	int rc = check_common(hdr, what, "activate", err);
	if (rc < 0)
		return rc;
	if (hdr->req_wrapd_reencrypt)
		return werr_set(err, -EPERM,
				"%s: a wrapd conversion (encrypt, rekey or decrypt) is in progress (requirement wrapd-reencrypt); resume or finish it with wrapctl before opening; 'wrapctl inspect %s' shows its state",
				what, what);
	int seg = luks2_first_crypt_segment(hdr);
	if (seg < 0 || luks2_digest_for_segment(hdr, (unsigned)seg) < 0)
		return werr_set(err, -EPERM, "%s: the header has no crypt segment with a digest", what);
	return 0;
}
