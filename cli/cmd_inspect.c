/*
 * wrapctl inspect DEVICE [--json]: what luksDump shows, plus the wrapd facts,
 * for any LUKS2 header. On a damaged header it says which copy is bad and why.
 * The document comes from volume_inspect() (a stable contract for scripts);
 * this file only prints it, as JSON or for a person.
 */
#include "cli/cli.h"
#include "volume/volume.h"

#include <getopt.h>

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

#define S(o, k) json_string_value(json_object_get((o), (k)))
#define I(o, k) ((long long)json_integer_value(json_object_get((o), (k))))

static void print_strings(const char *none, json_t *a)
{
	size_t i;
	json_t *v;
	if (!json_array_size(a))
		printf("%s", none);
	json_array_foreach(a, i, v) printf("%s ", json_string_value(v));
	printf("\n");
}

static void print_header(json_t *o)
{
	size_t i;
	json_t *v;
	printf("LUKS header information\n");
	printf("Device:         %s\n", S(o, "device"));
	printf("Version:        2\n");
	printf("Epoch:          %lld\n", I(o, "seqid"));
	printf("Metadata area:  %lld [bytes]\n", I(o, "metadata_size"));
	printf("Keyslots area:  %lld [bytes]\n", I(o, "keyslots_size"));
	printf("UUID:           %s\n", S(o, "uuid"));
	printf("Label:          %s\n", *S(o, "label") ? S(o, "label") : "(no label)");
	printf("Subsystem:      %s\n", *S(o, "subsystem") ? S(o, "subsystem") : "(no subsystem)");
	printf("Flags:          ");
	print_strings("(no flags)", json_object_get(o, "flags"));
	if (json_array_size(json_object_get(o, "requirements"))) {
		printf("Requirements:   ");
		print_strings("", json_object_get(o, "requirements"));
	}
	printf("Header copies:\n");
	json_array_foreach(json_object_get(o, "copies"), i, v)
	{
		json_t *why = json_object_get(v, "why");
		printf("  %-9s at %lld: %s%s%s%s\n", S(v, "copy"), I(v, "offset"), S(v, "status"),
		       json_is_true(json_object_get(v, "used")) ? " (in use)" : "",
		       json_is_string(why) ? " - " : "", json_is_string(why) ? json_string_value(why) : "");
		if (json_is_string(why))
			printf("            the next header write (or 'wrapctl header restore') repairs it\n");
	}
}

static void print_segments(json_t *o)
{
	size_t i;
	json_t *v;
	printf("\nData segments:\n");
	json_array_foreach(json_object_get(o, "segments"), i, v)
	{
		printf("  %lld: %s\n", I(v, "id"), S(v, "type"));
		printf("\toffset: %lld [bytes]\n", I(v, "offset"));
		print_size("length", json_object_get(v, "size"));
		if (json_object_get(v, "encryption")) {
			printf("\tcipher: %s\n", S(v, "encryption"));
			printf("\tsector: %lld [bytes]\n", I(v, "sector_size"));
			printf("\tiv_tweak: %lld\n", I(v, "iv_tweak"));
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
}

static void print_slots_tokens_digests(json_t *o)
{
	size_t i;
	json_t *v;
	printf("Keyslots:\n");
	json_array_foreach(json_object_get(o, "keyslots"), i, v)
	{
		json_t *kdf = json_object_get(v, "kdf");
		printf("  %lld: %s (not owned by wrapd)\n\tKey:  %lld bits\n\tArea: %s\n", I(v, "id"),
		       S(v, "type"), I(v, "key_size") * 8, S(v, "area_type"));
		if (json_is_string(kdf))
			printf("\tPBKDF: %s\n", json_string_value(kdf));
	}
	printf("Tokens:\n");
	json_array_foreach(json_object_get(o, "tokens"), i, v)
	{
		printf("  %lld: %s%s\n\tKeyslots: ", I(v, "id"), S(v, "type"),
		       strcmp(S(v, "owner"), "wrapd") ? " (not owned by wrapd)" : "");
		print_ids(json_object_get(v, "keyslots"));
		printf("\n");
	}
	printf("Digests:\n");
	json_array_foreach(json_object_get(o, "digests"), i, v)
	{
		printf("  %lld: %s\n\tHash:       %s\n\tIterations: %lld\n\tSegments:   ", I(v, "id"),
		       S(v, "type"), S(v, "hash"), I(v, "iterations"));
		print_ids(json_object_get(v, "segments"));
		printf("\n\tKeyslots:   ");
		print_ids(json_object_get(v, "keyslots"));
		printf("\n");
	}
}

static void print_wrapd(json_t *o)
{
	json_t *w = json_object_get(o, "wrapd");
	printf("\nwrapd:\n");
	if (json_is_true(json_object_get(w, "is_wrapd"))) {
		printf("  Volume:       wrapd volume (wrapd-vault token %lld)\n", I(w, "token_id"));
		printf("  Vault:        %s%s%s\n", S(w, "vault_addr"),
		       *S(w, "vault_namespace") ? " namespace " : "", S(w, "vault_namespace"));
		printf("  Transit key:  %s/%s, version %lld\n", S(w, "vault_mount"), S(w, "vault_key"),
		       I(w, "key_version"));
	} else if (json_is_string(json_object_get(w, "token_error"))) {
		printf("  Volume:       broken wrapd-vault token: %s\n", S(w, "token_error"));
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
}

#undef S
#undef I

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s)
		puts(s);
	free(s);
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
	struct volume_ctx vctx = {.log = &ctx->log, .udev = -1};
	struct werr err = {0};
	json_t *o = NULL;
	int rc = volume_inspect(&vctx, dev, &o, &err);
	if (o && (js || rc == 0)) {
		if (js)
			print_json(o);
		else {
			print_header(o);
			print_segments(o);
			print_slots_tokens_digests(o);
			print_wrapd(o);
		}
	}
	json_decref(o);
	if (rc < 0)
		return cli_fail(ctx, "%s", err.msg);
	if (!o)
		return cli_fail(ctx, "%s: out of memory", dev);
	return 0;
}

const struct wrapctl_cmd cmd_inspect = {
	.name = "inspect",
	.summary = "show a LUKS2/wrapd header (any cryptsetup header too); --json for scripts",
	.run = run_inspect,
};
