/*
 * The inspect document: what luksDump shows plus the wrapd facts, as one
 * JSON object (the contract of `wrapctl inspect --json`, also what the agent
 * can hand out unchanged). Every header string is hostile: only printable
 * ASCII goes into the document. The wrapped key and its context are shown:
 * they are on the device for anyone to read, and a break-glass recovery
 * (`vault write transit/decrypt`) needs them.
 */
#include "volume/internal.h"

#include "format/format.h"

#include <jansson.h>

static json_t *jsafe(const char *s)
{
	char b[1024];
	str_printable(b, sizeof(b), s);
	return json_string(b);
}

static json_t *id_of(const char *key)
{
	uint64_t id = 0;
	if (parse_u64(key, &id) < 0)
		id = 0;
	return json_integer((json_int_t)id);
}

static json_t *str_array_copy(json_t *a)
{
	json_t *o = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) if (json_is_string(v)) json_array_append_new(o, jsafe(json_string_value(v)));
	return o;
}

static json_t *ids_to_ints(json_t *a)
{
	json_t *o = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		uint64_t x;
		if (json_is_string(v) && parse_u64(json_string_value(v), &x) == 0)
			json_array_append_new(o, json_integer((json_int_t)x));
	}
	return o;
}

static json_t *copies_json(const struct luks2_hdr *h)
{
	json_t *a = json_array();
	for (int i = 0; i < 2; i++) {
		const struct luks2_copy_info *c = &h->copy[i];
		json_array_append_new(
			a, json_pack("{s:s, s:I, s:s, s:I, s:I, s:o, s:b}", "copy", i ? "secondary" : "primary",
				     "offset", (json_int_t)c->offset, "status", luks2_copy_status_str(c->status),
				     "hdr_size", (json_int_t)c->hdr_size, "seqid", (json_int_t)c->seqid,
				     "why", c->status == LUKS2_COPY_OK ? json_null() : jsafe(c->why),
				     "used", h->used_copy == i));
	}
	return a;
}

static void add_header_fields(json_t *o, const char *dev, const struct luks2_hdr *h)
{
	json_t *config = json_object_get(h->json, "config");
	json_object_set_new(o, "device", jsafe(dev));
	json_object_set_new(o, "valid", json_true());
	json_object_set_new(o, "version", json_integer(2));
	json_object_set_new(o, "seqid", json_integer((json_int_t)h->seqid));
	json_object_set_new(o, "metadata_size", json_integer((json_int_t)h->hdr_size));
	json_object_set_new(o, "keyslots_size", json_integer((json_int_t)h->keyslots_size));
	json_object_set_new(o, "uuid", jsafe(h->uuid));
	json_object_set_new(o, "label", jsafe(h->label));
	json_object_set_new(o, "subsystem", jsafe(h->subsystem));
	json_object_set_new(o, "checksum_alg", jsafe(h->checksum_alg));
	json_object_set_new(o, "flags", str_array_copy(json_object_get(config, "flags")));
	json_object_set_new(o, "requirements",
			    str_array_copy(json_object_get(json_object_get(config, "requirements"),
							   "mandatory")));
	json_object_set_new(o, "copies", copies_json(h));
	json_object_set_new(o, "data_offset", json_integer((json_int_t)h->data_offset));
	json_object_set_new(o, "data_size",
			    h->data_dynamic ? json_string("dynamic")
					    : json_integer((json_int_t)h->data_size));
	json_object_set_new(o, "sector_size", json_integer(h->sector_size));
	json_object_set_new(o, "cipher", jsafe(h->cipher));
	json_object_set_new(o, "key_size", json_integer(h->key_size));
}

static json_t *segment_json(const struct luks2_segment *s)
{
	json_t *j = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)s->id, "type", s->type, "offset",
			      (json_int_t)s->offset);
	json_object_set_new(j, "size", s->dynamic ? json_string("dynamic") : json_integer((json_int_t)s->size));
	if (!strcmp(s->type, "crypt")) {
		json_object_set_new(j, "iv_tweak", json_integer((json_int_t)s->iv_tweak));
		json_object_set_new(j, "encryption", jsafe(s->encryption));
		json_object_set_new(j, "sector_size", json_integer(s->sector_size));
		json_object_set_new(j, "digest", s->digest >= 0 ? json_integer(s->digest) : json_null());
	}
	json_object_set_new(j, "flags", str_array_copy(json_object_get(s->extra, "flags")));
	return j;
}

static json_t *segments_json(const struct luks2_hdr *h)
{
	struct luks2_segment *segs = NULL;
	size_t n = 0;
	json_t *sa = json_array();
	if (luks2_segments_get(h, &segs, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			json_array_append_new(sa, segment_json(&segs[i]));
		luks2_segments_free(segs, n);
	}
	return sa;
}

static json_t *keyslots_json(const struct luks2_hdr *h)
{
	const char *k;
	json_t *v;
	json_t *ka = json_array();
	json_object_foreach(json_object_get(h->json, "keyslots"), k, v)
	{
		json_t *area = json_object_get(v, "area");
		json_t *kdf = json_object_get(v, "kdf");
		json_t *j = json_pack("{s:o, s:o, s:I, s:s}", "id", id_of(k), "type",
				      jsafe(json_string_value(json_object_get(v, "type"))), "key_size",
				      json_integer_value(json_object_get(v, "key_size")), "owner", "other");
		json_object_set_new(j, "area_type", jsafe(json_string_value(json_object_get(area, "type"))));
		json_object_set_new(j, "kdf", json_is_string(json_object_get(kdf, "type"))
						      ? jsafe(json_string_value(json_object_get(kdf, "type")))
						      : json_null());
		json_array_append_new(ka, j);
	}
	return ka;
}

static json_t *tokens_json(const struct luks2_hdr *h)
{
	const char *k;
	json_t *v;
	json_t *ta = json_array();
	json_object_foreach(json_object_get(h->json, "tokens"), k, v)
	{
		const char *t = json_string_value(json_object_get(v, "type"));
		bool ours = t && (!strcmp(t, WRAPD_TOKEN_TYPE) || !strcmp(t, WRAPD_CONVERSION_TOKEN_TYPE));
		json_array_append_new(ta, json_pack("{s:o, s:o, s:o, s:s}", "id", id_of(k), "type", jsafe(t),
						    "keyslots", ids_to_ints(json_object_get(v, "keyslots")),
						    "owner", ours ? "wrapd" : "other"));
	}
	return ta;
}

static json_t *digests_json(const struct luks2_hdr *h)
{
	const char *k;
	json_t *v;
	json_t *da = json_array();
	json_object_foreach(json_object_get(h->json, "digests"), k, v)
	{
		json_array_append_new(
			da, json_pack("{s:o, s:o, s:o, s:I, s:o, s:o}", "id", id_of(k), "type",
				      jsafe(json_string_value(json_object_get(v, "type"))), "hash",
				      jsafe(json_string_value(json_object_get(v, "hash"))), "iterations",
				      json_integer_value(json_object_get(v, "iterations")), "segments",
				      ids_to_ints(json_object_get(v, "segments")), "keyslots",
				      ids_to_ints(json_object_get(v, "keyslots"))));
	}
	return da;
}

static json_t *wrapd_json(const struct luks2_hdr *h)
{
	json_t *w = json_object();
	struct wrapd_token tok;
	struct werr terr = {0};
	unsigned tid = 0;
	int trc = wrapd_token_get(h, &tok, &tid, &terr);
	json_object_set_new(w, "is_wrapd", json_boolean(trc == 0));
	if (trc == 0) {
		json_object_set_new(w, "token_id", json_integer(tid));
		json_object_set_new(w, "vault_addr", jsafe(tok.vault_addr));
		json_object_set_new(w, "vault_namespace", jsafe(tok.vault_namespace));
		json_object_set_new(w, "vault_mount", jsafe(tok.vault_mount));
		json_object_set_new(w, "vault_key", jsafe(tok.vault_key));
		json_object_set_new(w, "key_version", json_integer(tok.key_version));
		json_object_set_new(w, "ciphertext", jsafe(tok.ciphertext));
		json_object_set_new(w, "context", jsafe(tok.context));
		wrapd_token_free(&tok);
	} else if (trc != -ENOENT) {
		json_object_set_new(w, "token_error", jsafe(terr.msg));
	}
	json_t *state = NULL;
	struct werr cerr = {0};
	bool conv = h->req_wrapd_reencrypt || h->has_conversion_state;
	json_object_set_new(w, "conversion_in_progress", json_boolean(conv));
	json_object_set_new(w, "conversion_state",
			    luks2_conversion_get(h, &state, &cerr) == 0 ? state : json_null());
	return w;
}

static void add_checks(json_t *o, const char *dev, const struct luks2_hdr *h)
{
	struct werr e = {0};
	int arc = luks2_check_activatable(h, dev, &e);
	json_object_set_new(o, "activatable", json_boolean(arc == 0));
	json_object_set_new(o, "activatable_error", arc ? jsafe(e.msg) : json_null());
	werr_clear(&e);
	int wrc = luks2_check_writable(h, dev, &e);
	json_object_set_new(o, "writable", json_boolean(wrc == 0));
	json_object_set_new(o, "writable_error", wrc ? jsafe(e.msg) : json_null());
	json_object_set_new(o, "cryptsetup_reencrypt", json_boolean(h->req_cryptsetup_reencrypt));
	json_object_set_new(o, "unknown_requirement",
			    h->req_unknown ? jsafe(h->req_unknown_name) : json_null());
}

json_t *volume_inspect_header(const char *dev, const struct luks2_hdr *h)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	add_header_fields(o, dev, h);
	json_object_set_new(o, "segments", segments_json(h));
	json_object_set_new(o, "keyslots", keyslots_json(h));
	json_object_set_new(o, "tokens", tokens_json(h));
	json_object_set_new(o, "digests", digests_json(h));
	json_object_set_new(o, "wrapd", wrapd_json(h));
	add_checks(o, dev, h);
	return o;
}

int volume_inspect(const struct volume_ctx *ctx, const char *dev, json_t **doc, struct werr *err)
{
	*doc = NULL;
	_cleanup_close_ int fd = -1;
	int rc = luks2_dev_open(dev, false, false, &fd, NULL, err);
	if (rc < 0)
		return rc;
	_cleanup_luks2_lock_ struct luks2_lock lk = LUKS2_LOCK_INIT;
	struct werr lerr = {0};
	/* Read-only users (no lock dir rights) can still inspect image files. */
	if (luks2_lock(fd, dev, false, &lk, &lerr) < 0)
		wlog_debug(ctx->log, "%s (inspecting without the lock)", lerr.msg);
	_cleanup_luks2_hdr_ struct luks2_hdr *hdr = NULL, *diag = NULL;
	rc = luks2_hdr_read(fd, dev, &hdr, &diag, err);
	if (rc < 0) {
		/* The message names both copies and why each is bad; keep it printable. */
		char msg[WERR_MSG_MAX];
		str_printable(msg, sizeof(msg), err->msg);
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
		*doc = json_pack("{s:o, s:b, s:s}", "device", jsafe(dev), "valid", 0, "error", msg);
		if (*doc && diag)
			json_object_set_new(*doc, "copies", copies_json(diag));
		return rc;
	}
	*doc = volume_inspect_header(dev, hdr);
	if (!*doc)
		return werr_set(err, -ENOMEM, "%s: out of memory", dev);
	return 0;
}
