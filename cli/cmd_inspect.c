/*
 * wrapctl inspect DEVICE [--json]: what luksDump shows, plus the wrapd facts,
 * for any LUKS2 header. On a damaged header it says which copy is bad and why.
 * The --json form is a stable contract for scripts (see inspect_json()).
 */
#include "cli/cli.h"
#include "format/format.h"

#include <getopt.h>

/* Header strings are hostile: only printable ASCII reaches the terminal. */
static void safe(char *dst, size_t n, const char *src)
{
	size_t j = 0;
	for (size_t i = 0; src && src[i] && j + 1 < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[j] = '\0';
}

static json_t *jsafe(const char *s)
{
	char b[1024];
	safe(b, sizeof(b), s);
	return json_string(b);
}

static const char *copy_name(int i) { return i ? "secondary" : "primary"; }

static json_t *copies_json(const struct luks2_hdr *h)
{
	json_t *a = json_array();
	for (int i = 0; i < 2; i++) {
		const struct luks2_copy_info *c = &h->copy[i];
		json_array_append_new(
			a, json_pack("{s:s, s:I, s:s, s:I, s:I, s:o, s:b}", "copy", copy_name(i), "offset",
				     (json_int_t)c->offset, "status", luks2_copy_status_str(c->status),
				     "hdr_size", (json_int_t)c->hdr_size, "seqid", (json_int_t)c->seqid,
				     "why", c->status == LUKS2_COPY_OK ? json_null() : jsafe(c->why),
				     "used", h->used_copy == i));
	}
	return a;
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

static json_t *inspect_json(const char *dev, const struct luks2_hdr *h)
{
	json_t *root = h->json;
	json_t *config = json_object_get(root, "config");
	json_t *o = json_object();
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

	struct luks2_segment *segs = NULL;
	size_t n = 0;
	json_t *sa = json_array();
	if (luks2_segments_get(h, &segs, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct luks2_segment *s = &segs[i];
			json_t *j = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)s->id, "type", s->type,
					      "offset", (json_int_t)s->offset);
			json_object_set_new(j, "size", s->dynamic ? json_string("dynamic")
								  : json_integer((json_int_t)s->size));
			if (!strcmp(s->type, "crypt")) {
				json_object_set_new(j, "iv_tweak", json_integer((json_int_t)s->iv_tweak));
				json_object_set_new(j, "encryption", jsafe(s->encryption));
				json_object_set_new(j, "sector_size", json_integer(s->sector_size));
				json_object_set_new(j, "digest", s->digest >= 0 ? json_integer(s->digest)
										: json_null());
			}
			json_object_set_new(j, "flags",
					    str_array_copy(json_object_get(s->extra, "flags")));
			json_array_append_new(sa, j);
		}
		luks2_segments_free(segs, n);
	}
	json_object_set_new(o, "segments", sa);

	const char *k;
	json_t *v;
	json_t *ka = json_array();
	json_object_foreach(json_object_get(root, "keyslots"), k, v)
	{
		uint64_t id = 0;
		if (parse_u64(k, &id) < 0)
			id = 0;
		json_t *area = json_object_get(v, "area");
		json_t *kdf = json_object_get(v, "kdf");
		json_t *j = json_pack("{s:I, s:o, s:I, s:s}", "id", (json_int_t)id, "type",
				      jsafe(json_string_value(json_object_get(v, "type"))), "key_size",
				      json_integer_value(json_object_get(v, "key_size")), "owner", "other");
		json_object_set_new(j, "area_type", jsafe(json_string_value(json_object_get(area, "type"))));
		json_object_set_new(j, "kdf", json_is_string(json_object_get(kdf, "type"))
						      ? jsafe(json_string_value(json_object_get(kdf, "type")))
						      : json_null());
		json_array_append_new(ka, j);
	}
	json_object_set_new(o, "keyslots", ka);

	json_t *ta = json_array();
	json_object_foreach(json_object_get(root, "tokens"), k, v)
	{
		uint64_t id = 0;
		if (parse_u64(k, &id) < 0)
			id = 0;
		const char *t = json_string_value(json_object_get(v, "type"));
		bool ours = !strcmp(t, WRAPD_TOKEN_TYPE) || !strcmp(t, WRAPD_CONVERSION_TOKEN_TYPE);
		json_array_append_new(ta, json_pack("{s:I, s:o, s:o, s:s}", "id", (json_int_t)id, "type",
						    jsafe(t), "keyslots",
						    ids_to_ints(json_object_get(v, "keyslots")), "owner",
						    ours ? "wrapd" : "other"));
	}
	json_object_set_new(o, "tokens", ta);

	json_t *da = json_array();
	json_object_foreach(json_object_get(root, "digests"), k, v)
	{
		uint64_t id = 0;
		if (parse_u64(k, &id) < 0)
			id = 0;
		json_array_append_new(
			da, json_pack("{s:I, s:o, s:o, s:I, s:o, s:o}", "id", (json_int_t)id, "type",
				      jsafe(json_string_value(json_object_get(v, "type"))), "hash",
				      jsafe(json_string_value(json_object_get(v, "hash"))), "iterations",
				      json_integer_value(json_object_get(v, "iterations")), "segments",
				      ids_to_ints(json_object_get(v, "segments")), "keyslots",
				      ids_to_ints(json_object_get(v, "keyslots"))));
	}
	json_object_set_new(o, "digests", da);

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
		/* The wrapped key and its context are on the device for anyone to
		 * read (luksDump shows them too); scripts need them for a manual
		 * `vault write transit/decrypt` in a break-glass recovery. */
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
	if (luks2_conversion_get(h, &state, &cerr) == 0)
		json_object_set_new(w, "conversion_state", state);
	else
		json_object_set_new(w, "conversion_state", json_null());
	json_object_set_new(o, "wrapd", w);

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
	return o;
}

static void print_size(const char *what, json_t *v)
{
	if (json_is_string(v))
		printf("\t%s: (whole device)\n", what);
	else
		printf("\t%s: %lld [bytes]\n", what, (long long)json_integer_value(v));
}

static void print_ids(json_t *a)
{
	size_t i;
	json_t *v;
	if (!json_array_size(a)) {
		printf("-");
		return;
	}
	json_array_foreach(a, i, v) printf("%s%lld", i ? " " : "", (long long)json_integer_value(v));
}

static void print_human(json_t *o)
{
#define S(k) json_string_value(json_object_get(o, k))
#define I(k) (long long)json_integer_value(json_object_get(o, k))
	size_t i;
	json_t *v;
	printf("LUKS header information\n");
	printf("Device:         %s\n", S("device"));
	printf("Version:        2\n");
	printf("Epoch:          %lld\n", I("seqid"));
	printf("Metadata area:  %lld [bytes]\n", I("metadata_size"));
	printf("Keyslots area:  %lld [bytes]\n", I("keyslots_size"));
	printf("UUID:           %s\n", S("uuid"));
	printf("Label:          %s\n", *S("label") ? S("label") : "(no label)");
	printf("Subsystem:      %s\n", *S("subsystem") ? S("subsystem") : "(no subsystem)");
	printf("Flags:          ");
	json_t *a = json_object_get(o, "flags");
	if (!json_array_size(a))
		printf("(no flags)");
	json_array_foreach(a, i, v) printf("%s ", json_string_value(v));
	printf("\n");
	a = json_object_get(o, "requirements");
	if (json_array_size(a)) {
		printf("Requirements:   ");
		json_array_foreach(a, i, v) printf("%s ", json_string_value(v));
		printf("\n");
	}
	printf("Header copies:\n");
	json_array_foreach(json_object_get(o, "copies"), i, v)
	{
		json_t *why = json_object_get(v, "why");
		printf("  %-9s at %lld: %s%s%s%s\n", json_string_value(json_object_get(v, "copy")),
		       (long long)json_integer_value(json_object_get(v, "offset")),
		       json_string_value(json_object_get(v, "status")),
		       json_is_true(json_object_get(v, "used")) ? " (in use)" : "",
		       json_is_string(why) ? " - " : "", json_is_string(why) ? json_string_value(why) : "");
		if (json_is_string(why))
			printf("            the next header write (or 'wrapctl header restore') repairs it\n");
	}
	printf("\nData segments:\n");
	json_array_foreach(json_object_get(o, "segments"), i, v)
	{
		printf("  %lld: %s\n", (long long)json_integer_value(json_object_get(v, "id")),
		       json_string_value(json_object_get(v, "type")));
		printf("\toffset: %lld [bytes]\n", (long long)json_integer_value(json_object_get(v, "offset")));
		print_size("length", json_object_get(v, "size"));
		if (json_object_get(v, "encryption")) {
			printf("\tcipher: %s\n", json_string_value(json_object_get(v, "encryption")));
			printf("\tsector: %lld [bytes]\n",
			       (long long)json_integer_value(json_object_get(v, "sector_size")));
			printf("\tiv_tweak: %lld\n", (long long)json_integer_value(json_object_get(v, "iv_tweak")));
		}
		json_t *fl = json_object_get(v, "flags");
		if (json_array_size(fl)) {
			size_t j;
			json_t *f;
			printf("\tflags:");
			json_array_foreach(fl, j, f) printf(" %s", json_string_value(f));
			printf("\n");
		}
	}
	printf("Keyslots:\n");
	json_array_foreach(json_object_get(o, "keyslots"), i, v)
	{
		json_t *kdf = json_object_get(v, "kdf");
		printf("  %lld: %s (not owned by wrapd)\n\tKey:  %lld bits\n\tArea: %s\n",
		       (long long)json_integer_value(json_object_get(v, "id")),
		       json_string_value(json_object_get(v, "type")),
		       (long long)json_integer_value(json_object_get(v, "key_size")) * 8,
		       json_string_value(json_object_get(v, "area_type")));
		if (json_is_string(kdf))
			printf("\tPBKDF: %s\n", json_string_value(kdf));
	}
	printf("Tokens:\n");
	json_array_foreach(json_object_get(o, "tokens"), i, v)
	{
		printf("  %lld: %s%s\n\tKeyslots: ", (long long)json_integer_value(json_object_get(v, "id")),
		       json_string_value(json_object_get(v, "type")),
		       strcmp(json_string_value(json_object_get(v, "owner")), "wrapd")
			       ? " (not owned by wrapd)"
			       : "");
		print_ids(json_object_get(v, "keyslots"));
		printf("\n");
	}
	printf("Digests:\n");
	json_array_foreach(json_object_get(o, "digests"), i, v)
	{
		printf("  %lld: %s\n\tHash:       %s\n\tIterations: %lld\n\tSegments:   ",
		       (long long)json_integer_value(json_object_get(v, "id")),
		       json_string_value(json_object_get(v, "type")),
		       json_string_value(json_object_get(v, "hash")),
		       (long long)json_integer_value(json_object_get(v, "iterations")));
		print_ids(json_object_get(v, "segments"));
		printf("\n\tKeyslots:   ");
		print_ids(json_object_get(v, "keyslots"));
		printf("\n");
	}
	json_t *w = json_object_get(o, "wrapd");
	printf("\nwrapd:\n");
	if (json_is_true(json_object_get(w, "is_wrapd"))) {
		printf("  Volume:       wrapd volume (wrapd-vault token %lld)\n",
		       (long long)json_integer_value(json_object_get(w, "token_id")));
		printf("  Vault:        %s%s%s\n", json_string_value(json_object_get(w, "vault_addr")),
		       *json_string_value(json_object_get(w, "vault_namespace")) ? " namespace " : "",
		       json_string_value(json_object_get(w, "vault_namespace")));
		printf("  Transit key:  %s/%s, version %lld\n",
		       json_string_value(json_object_get(w, "vault_mount")),
		       json_string_value(json_object_get(w, "vault_key")),
		       (long long)json_integer_value(json_object_get(w, "key_version")));
	} else if (json_is_string(json_object_get(w, "token_error"))) {
		printf("  Volume:       broken wrapd-vault token: %s\n",
		       json_string_value(json_object_get(w, "token_error")));
	} else {
		printf("  Volume:       not a wrapd volume (no wrapd-vault token)\n");
	}
	if (json_is_true(json_object_get(w, "conversion_in_progress"))) {
		_cleanup_free_ char *st = json_dumps(json_object_get(w, "conversion_state"), JSON_COMPACT);
		printf("  Conversion:   IN PROGRESS (requirement wrapd-reencrypt); state %s\n",
		       st ? st : "null");
	} else {
		printf("  Conversion:   none\n");
	}
	json_t *ae = json_object_get(o, "activatable_error");
	printf("  Activatable:  %s\n", json_is_string(ae) ? json_string_value(ae) : "yes");
	json_t *we = json_object_get(o, "writable_error");
	if (json_is_string(we))
		printf("  Writable:     %s\n", json_string_value(we));
#undef S
#undef I
}

static int run_inspect(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool js = ctx->json;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': js = true; break;
		case 'h': printf("Usage: wrapctl inspect DEVICE [--json]\n"); return 0;
		default: fprintf(stderr, "Usage: wrapctl inspect DEVICE [--json]\n"); return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "Usage: wrapctl inspect DEVICE [--json]\n");
		return 2;
	}
	const char *dev = argv[optind];
	struct werr err = {0};
	_cleanup_close_ int fd = -1;
	int rc = luks2_dev_open(dev, false, false, &fd, NULL, &err);
	if (rc < 0)
		return cli_fail(ctx, "%s", err.msg);
	_cleanup_luks2_lock_ struct luks2_lock lk = LUKS2_LOCK_INIT;
	/* Read-only users (no lock dir rights) can still inspect image files. */
	if (luks2_lock(fd, dev, false, &lk, &err) < 0)
		wlog_debug(&ctx->log, "%s (inspecting without the lock)", err.msg);
	_cleanup_luks2_hdr_ struct luks2_hdr *hdr = NULL, *diag = NULL;
	rc = luks2_hdr_read(fd, dev, &hdr, &diag, &err);
	if (rc < 0) {
		if (js) {
			json_t *o = json_pack("{s:o, s:b, s:o}", "device", jsafe(dev), "valid", 0, "error",
					      jsafe(err.msg));
			if (diag)
				json_object_set_new(o, "copies", copies_json(diag));
			char *s = json_dumps(o, JSON_INDENT(2));
			if (s)
				puts(s);
			free(s);
			json_decref(o);
		}
		/* The message names both copies and why each is bad. */
		char msg[WERR_MSG_MAX];
		safe(msg, sizeof(msg), err.msg);
		return cli_fail(ctx, "%s", msg);
	}
	json_t *o = inspect_json(dev, hdr);
	if (!o)
		return cli_fail(ctx, "%s: out of memory", dev);
	if (js) {
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
	} else {
		print_human(o);
	}
	json_decref(o);
	return 0;
}

const struct wrapctl_cmd cmd_inspect = {
	.name = "inspect",
	.summary = "show a LUKS2/wrapd header (any cryptsetup header too); --json for scripts",
	.run = run_inspect,
};
