/*
 * wrapctl open | close | status | rewrap | erase | doctor: the volume
 * lifecycle on a host (volume/volume.h does the work).
 */
#include "cli/cli.h"
#include "dm/dm.h"
#include "vault/vault.h"
#include "volume/volume.h"

#include <getopt.h>
#include <jansson.h>
#include <libgen.h>

/* Options every volume command accepts (the Vault ones go to the ctx). */
struct vopts {
	int udev;                  /* -1 detect */
	const char *table;
	bool all;
};

enum {
	O_UDEV = 1000, O_NO_UDEV, O_TABLE, O_ALL, O_HEADER,
	O_ALLOW_DISCARDS, O_WQ, O_NO_WQ, O_DEFERRED, O_FORCE, O_JSON, O_YES, O_KERNEL, O_NO_DISCARD,
};

#define COMMON_LONGOPTS \
	CLI_VAULT_LONGOPTS, \
	{"udev", no_argument, NULL, O_UDEV}, \
	{"no-udev", no_argument, NULL, O_NO_UDEV}, \
	{"table", required_argument, NULL, O_TABLE}, \
	{"all", no_argument, NULL, O_ALL}, \
	{"help", no_argument, NULL, 'h'}

/* 1 handled, 0 not a common option. */
static int common_opt(struct wrapctl_ctx *ctx, int c, struct vopts *vo)
{
	if (cli_vault_option(ctx, c, optarg))
		return 1;
	switch (c) {
	case O_UDEV: vo->udev = 1; return 1;
	case O_NO_UDEV: vo->udev = 0; return 1;
	case O_TABLE: vo->table = optarg; return 1;
	case O_ALL: vo->all = true; return 1;
	}
	return 0;
}

/* Vault state for one command. */
struct vsession {
	struct vault_config cfg;
	bool cfg_loaded;
	struct vault_client *vc;
};

static void vsession_free(struct vsession *s)
{
	vault_client_free(s->vc);
	if (s->cfg_loaded)
		vault_config_free(&s->cfg);
}

static int vsession_open(const struct wrapctl_ctx *ctx, struct vsession *s,
			 struct volume_ctx *vctx, struct werr *err)
{
	memset(s, 0, sizeof(*s));
	/* --vault-* after the command already replaced those before it. */
	struct volume_vault_opts o;
	cli_vault_opts(ctx, &o);
	int r = cli_config_load(ctx, &s->cfg, NULL, err);
	if (r < 0)
		return r;
	s->cfg_loaded = true;
	r = volume_vault_apply(&s->cfg, &o, err);
	if (r < 0)
		return r;
	r = vault_client_new(&s->cfg, &ctx->log, &s->vc, err);
	if (r < 0)
		return r;
	vctx->vc = s->vc;
	vctx->vcfg = &s->cfg;
	vctx->vault_key_explicit = volume_vault_opts_key_explicit(&o);
	return 0;
}

/* The table: --table, else volume_table from wrapd.conf, else the default.
 * vo->table then names the file read (owned by *owned). */
static int load_table(const struct wrapctl_ctx *ctx, struct vopts *vo, char **owned,
		      struct volume_table *tab, struct werr *err)
{
	int r = cli_table_path(ctx, vo->table, owned, err);
	if (r < 0)
		return r;
	vo->table = *owned;
	return volume_table_load(vo->table, tab, err);
}

static void vctx_init(const struct wrapctl_ctx *ctx, const struct vopts *vo, struct volume_ctx *v)
{
	memset(v, 0, sizeof(*v));
	v->log = &ctx->log;
	v->udev = vo->udev;
}

static const char common_help[] =
	"      --vault-mount M   Transit mount (default: the one in each volume's token)\n"
	"      --vault-key K     Transit key (default: the one in each volume's token)\n"
	"      --vault-addr URL  Vault address (default VAULT_ADDR, else the config file)\n"
	"      --udev, --no-udev sync with udev or create /dev/mapper nodes ourselves (default: detect)\n"
	"      --table FILE      volume table (default " VOLUME_TABLE_DEFAULT ")\n";

/* ---- open ------------------------------------------------------------------ */

/* Default mapping name: the file or device's base name, made dm-safe. */
static int default_name(const char *device, char **out)
{
	_cleanup_free_ char *dup = strdup(device);
	if (!dup)
		return -ENOMEM;
	const char *b = !strncmp(device, "UUID=", 5) ? device + 5 : basename(dup);
	char *n = strndup(b, VOLUME_NAME_MAX);
	if (!n)
		return -ENOMEM;
	for (char *p = n; *p; p++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+@-", *p))
			*p = '_';
	if (!dmcrypt_name_valid(n)) {
		free(n);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static int open_usage(FILE *f)
{
	fprintf(f,
		"Usage: wrapctl open [OPTIONS] DEVICE [NAME]\n"
		"       wrapctl open [OPTIONS] NAME        (a volume of the table)\n"
		"       wrapctl open --all [--table FILE]\n"
		"Open a wrapd volume as /dev/mapper/NAME (a loop device is set up for a file).\n"
		"Opening an already open volume under the same name succeeds.\n"
		"  -r, --read-only         map read-only\n"
		"      --allow-discards    pass TRIM through (reveals which blocks are free)\n"
		"      --no-workqueue      force no_read/no_write_workqueue (default from Linux 5.9)\n"
		"      --workqueue         use dm-crypt's workqueues\n"
		"      --header FILE       detached LUKS2 header\n"
		"%s", common_help);
	return f == stdout ? 0 : 2;
}

static int run_open(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"read-only", no_argument, NULL, 'r'},
		{"allow-discards", no_argument, NULL, O_ALLOW_DISCARDS},
		{"workqueue", no_argument, NULL, O_WQ},
		{"no-workqueue", no_argument, NULL, O_NO_WQ},
		{"header", required_argument, NULL, O_HEADER},
		COMMON_LONGOPTS,
		{0},
	};
	struct vopts vo = {.udev = -1};
	unsigned flags = 0;
	const char *header = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "rh", opts, NULL)) != -1) {
		if (common_opt(ctx, c, &vo))
			continue;
		switch (c) {
		case 'r': flags |= VOLUME_READ_ONLY; break;
		case O_ALLOW_DISCARDS: flags |= VOLUME_ALLOW_DISCARDS; break;
		case O_WQ: flags = (flags & ~(unsigned)VOLUME_NO_WORKQUEUE) | VOLUME_WORKQUEUE; break;
		case O_NO_WQ: flags = (flags & ~(unsigned)VOLUME_WORKQUEUE) | VOLUME_NO_WORKQUEUE; break;
		case O_HEADER: header = optarg; break;
		case 'h': return open_usage(stdout);
		default: return open_usage(stderr);
		}
	}
	int nargs = argc - optind;
	if (vo.all ? nargs != 0 : (nargs < 1 || nargs > 2))
		return open_usage(stderr);

	struct werr err;
	werr_clear(&err);
	_cleanup_(volume_table_free) struct volume_table tab = {0};
	_cleanup_free_ char *tpath = NULL;
	struct volume_open_req *reqs = NULL;
	size_t n = 0;
	_cleanup_free_ char *dname = NULL;
	int r;

	if (vo.all || (nargs == 1 && !strchr(argv[optind], '/') && strncmp(argv[optind], "UUID=", 5))) {
		r = load_table(ctx, &vo, &tpath, &tab, &err);
		if (r < 0)
			return cli_fail(ctx, "%s", werr_str(&err, r));
		reqs = calloc(tab.n ? tab.n : 1, sizeof(*reqs));
		if (!reqs)
			return cli_fail(ctx, "out of memory");
		for (size_t i = 0; i < tab.n; i++) {
			const struct volume_entry *e = &tab.v[i];
			if (vo.all ? e->noauto : strcmp(e->name, argv[optind]))
				continue;
			reqs[n].device = e->device;
			reqs[n].name = e->name;
			reqs[n].header = header ? header : e->header;
			reqs[n].flags = e->flags | flags;
			n++;
		}
		if (!vo.all && n == 0) {
			free(reqs);
			return cli_fail(ctx, "'%s' is neither a device path nor a volume in %s", argv[optind],
					vo.table ? vo.table : VOLUME_TABLE_DEFAULT);
		}
		if (n == 0) {
			free(reqs);
			printf("no volumes to open in %s\n", vo.table ? vo.table : VOLUME_TABLE_DEFAULT);
			return 0;
		}
	} else {
		const char *dev = argv[optind];
		const char *name = nargs == 2 ? argv[optind + 1] : NULL;
		if (!name) {
			r = default_name(dev, &dname);
			if (r < 0)
				return cli_fail(ctx, "%s: cannot derive a mapping name; give NAME", dev);
			name = dname;
		}
		reqs = calloc(1, sizeof(*reqs));
		if (!reqs)
			return cli_fail(ctx, "out of memory");
		reqs[0].device = dev;
		reqs[0].name = name;
		reqs[0].header = header;
		reqs[0].flags = flags;
		n = 1;
	}

	struct volume_ctx vctx;
	vctx_init(ctx, &vo, &vctx);
	struct vsession vs;
	r = vsession_open(ctx, &vs, &vctx, &err);
	if (r < 0) {
		vsession_free(&vs);
		free(reqs);
		return cli_fail(ctx, "%s", werr_str(&err, r));
	}
	r = volume_open_many(&vctx, reqs, n, &err);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].rc < 0) {
			cli_fail(ctx, "%s", reqs[i].msg);
			rc = 1;
		} else if (reqs[i].already_open) {
			printf("%s: already open as /dev/mapper/%s\n", reqs[i].device, reqs[i].name);
		} else {
			printf("%s: opened as /dev/mapper/%s%s\n", reqs[i].device, reqs[i].name,
			       reqs[i].flags & VOLUME_READ_ONLY ? " (read-only)" : "");
		}
	}
	if (n > 1 && r < 0)
		cli_fail(ctx, "%s", werr_str(&err, r));
	vsession_free(&vs);
	free(reqs);
	return rc;
}

/* ---- close ------------------------------------------------------------------ */

static int close_usage(FILE *f)
{
	fprintf(f,
		"Usage: wrapctl close [--deferred] [--force] NAME\n"
		"       wrapctl close --all [--table FILE]\n"
		"Remove the mapping (its loop device goes with it).\n"
		"      --deferred   remove once the last user closes it\n"
		"      --force      also close a mapping wrapd did not make\n");
	return f == stdout ? 0 : 2;
}

static int run_close(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"deferred", no_argument, NULL, O_DEFERRED},
		{"force", no_argument, NULL, O_FORCE},
		COMMON_LONGOPTS,
		{0},
	};
	struct vopts vo = {.udev = -1};
	bool deferred = false, force = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(ctx, c, &vo))
			continue;
		switch (c) {
		case O_DEFERRED: deferred = true; break;
		case O_FORCE: force = true; break;
		case 'h': return close_usage(stdout);
		default: return close_usage(stderr);
		}
	}
	int nargs = argc - optind;
	if (vo.all ? nargs != 0 : nargs != 1)
		return close_usage(stderr);
	struct volume_ctx vctx;
	vctx_init(ctx, &vo, &vctx);
	struct werr err;
	werr_clear(&err);
	if (!vo.all) {
		int r = volume_close(&vctx, argv[optind], deferred, force, &err);
		if (r < 0)
			return cli_fail(ctx, "%s", werr_str(&err, r));
		printf("%s: %s\n", argv[optind], deferred ? "closing (deferred)" : "closed");
		return 0;
	}
	_cleanup_(volume_table_free) struct volume_table tab = {0};
	_cleanup_free_ char *tpath = NULL;
	int r = load_table(ctx, &vo, &tpath, &tab, &err);
	if (r < 0)
		return cli_fail(ctx, "%s", werr_str(&err, r));
	int rc = 0;
	for (size_t i = tab.n; i-- > 0;) {
		werr_clear(&err);
		r = volume_close(&vctx, tab.v[i].name, deferred, force, &err);
		if (r == -ENXIO)
			continue; /* not open */
		if (r < 0) {
			cli_fail(ctx, "%s", werr_str(&err, r));
			rc = 1;
		} else {
			printf("%s: closed\n", tab.v[i].name);
		}
	}
	return rc;
}

/* ---- status ------------------------------------------------------------------ */

/* An online rekey in progress: how far (the header's checkpoint), and the
 * live table's view. */
static void print_rekey(const struct volume_status *s)
{
	uint64_t done, total;
	const char *src;
	if (!volume_status_rekey(s, &done, &total, &src))
		return;
	printf("  rekey:        IN PROGRESS%s: %.1f of %.1f MiB (%.1f%%, %s)\n",
	       s->split ? " (online)" : "", (double)done / 1048576.0, (double)total / 1048576.0,
	       total ? 100.0 * (double)done / (double)total : 0.0,
	       !strcmp(src, "header") ? "the header's checkpoint" : "from the table: no readable header");
	if (s->split) {
		printf("  table:        %u targets: new key to %.1f MiB", s->targets,
		       (double)s->table_new_bytes / 1048576.0);
		if (s->zone_bytes)
			printf(", zone %.1f-%.1f MiB", (double)s->zone_start / 1048576.0,
			       (double)(s->zone_start + s->zone_bytes) / 1048576.0);
		printf("\n");
	}
}

static int run_status(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, O_JSON},
		{"kernel", no_argument, NULL, O_KERNEL},
		{"udev", no_argument, NULL, O_UDEV},
		{"no-udev", no_argument, NULL, O_NO_UDEV},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct vopts vo = {.udev = -1};
	bool json = ctx->json, kernel = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(ctx, c, &vo))
			continue;
		switch (c) {
		case O_JSON: json = true; break;
		case O_KERNEL: kernel = true; break;
		case 'h':
			printf("Usage: wrapctl status [--json] [--kernel] [NAME]\n"
			       "Show wrapd volumes: the agent's view when wrapd runs (states, errors,\n"
			       "Vault), else (or with --kernel) the mappings from device-mapper and\n"
			       "the headers. No Vault needed.\n");
			return 0;
		default: return 2;
		}
	}
	if (argc - optind > 1)
		return cli_fail(ctx, "usage: wrapctl status [--json] [NAME]") + 1;
	const char *name = argc - optind == 1 ? argv[optind] : NULL;
	int ar = kernel ? 1 : cli_status_from_agent(ctx, name, json);
	if (ar <= 0)
		return ar < 0 ? 1 : 0;
	struct volume_ctx vctx;
	vctx_init(ctx, &vo, &vctx);
	struct werr err;
	werr_clear(&err);
	struct volume_status *st = NULL;
	size_t n = 0;
	int r = volume_status_list(&vctx, name, &st, &n, &err);
	if (r < 0)
		return cli_fail(ctx, "%s", werr_str(&err, r));
	if (json) {
		json_t *arr = volume_status_json(st, n);
		char *txt = arr ? json_dumps(arr, JSON_INDENT(2)) : NULL;
		json_decref(arr);
		free(st);
		if (!txt)
			return cli_fail(ctx, "status: out of memory");
		printf("%s\n", txt);
		free(txt);
		return 0;
	}
	if (n == 0)
		printf("no wrapd mappings\n");
	for (size_t i = 0; i < n; i++) {
		const struct volume_status *s = &st[i];
		printf("/dev/mapper/%s is active%s%s.\n", s->name, s->read_only ? " (read-only)" : "",
		       s->suspended ? " and suspended" : "");
		printf("  uuid:         %s\n", s->luks_uuid);
		if (s->backing_file[0])
			printf("  device:       %s (loop on %s)\n", s->backing, s->backing_file);
		else
			printf("  device:       %s\n", s->backing);
		printf("  cipher:       %s\n", s->cipher);
		if (s->split && s->key_ref_new[0] && strcmp(s->key_ref, s->key_ref_new)) {
			printf("  key:          keyring %s (old key, the rest)\n", s->key_ref);
			printf("  new key:      keyring %s (first %.1f MiB)\n", s->key_ref_new,
			       (double)s->table_new_bytes / 1048576.0);
		} else {
			printf("  key:          keyring %s\n", s->key_ref);
		}
		printf("  size:         %llu bytes (%llu sectors%s)\n", (unsigned long long)s->size_bytes,
		       (unsigned long long)(s->size_bytes / 512), s->targets > 1 ? ", split table" : "");
		print_rekey(s);
		printf("  offset:       %llu sectors\n", (unsigned long long)s->offset_sectors);
		printf("  sector size:  %u\n", s->sector_size);
		printf("  flags:        %s\n", s->flags[0] ? s->flags : "(none)");
		printf("  mode:         %s\n", s->read_only ? "read-only" : "read/write");
		if (s->key_version >= 0)
			printf("  vault key:    version %d\n", s->key_version);
		else
			printf("  vault key:    unknown (%s)\n", s->header_note);
		printf("  open count:   %d\n", s->open_count);
		printf("  holders:      %s\n", s->holders[0] ? s->holders : "(none)");
	}
	free(st);
	return 0;
}

/* ---- rewrap ------------------------------------------------------------------ */

static int run_rewrap(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"header", required_argument, NULL, O_HEADER},
		COMMON_LONGOPTS,
		{0},
	};
	struct vopts vo = {.udev = -1};
	const char *header = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(ctx, c, &vo))
			continue;
		switch (c) {
		case O_HEADER: header = optarg; break;
		case 'h':
			printf("Usage: wrapctl rewrap [--header FILE] DEVICE\n"
			       "       wrapctl rewrap --all [--table FILE]\n"
			       "Rewrap the volume key under the Transit key's latest version (after a\n"
			       "rotation); one Vault request for --all. Safe while the volume is open.\n%s",
			       common_help);
			return 0;
		default: return 2;
		}
	}
	int nargs = argc - optind;
	if (vo.all ? nargs != 0 : nargs != 1)
		return cli_fail(ctx, "usage: wrapctl rewrap DEVICE | --all") + 1;
	struct werr err;
	werr_clear(&err);
	_cleanup_(volume_table_free) struct volume_table tab = {0};
	_cleanup_free_ char *tpath = NULL;
	const char **devs = NULL, **hdrs = NULL;
	size_t n = 0;
	int r;
	if (vo.all) {
		r = load_table(ctx, &vo, &tpath, &tab, &err);
		if (r < 0)
			return cli_fail(ctx, "%s", werr_str(&err, r));
		n = tab.n;
	} else {
		n = 1;
	}
	devs = calloc(n ? n : 1, sizeof(*devs));
	hdrs = calloc(n ? n : 1, sizeof(*hdrs));
	struct volume_rewrap_result *res = calloc(n ? n : 1, sizeof(*res));
	if (!devs || !hdrs || !res) {
		free(devs);
		free(hdrs);
		free(res);
		return cli_fail(ctx, "out of memory");
	}
	if (vo.all) {
		for (size_t i = 0; i < n; i++) {
			devs[i] = tab.v[i].device;
			hdrs[i] = tab.v[i].header;
		}
	} else {
		devs[0] = argv[optind];
		hdrs[0] = header;
	}
	int rc = 0;
	struct volume_ctx vctx;
	vctx_init(ctx, &vo, &vctx);
	struct vsession vs;
	r = vsession_open(ctx, &vs, &vctx, &err);
	if (r < 0) {
		rc = cli_fail(ctx, "%s", werr_str(&err, r));
	} else if (n) {
		r = volume_rewrap(&vctx, devs, hdrs, n, res, &err);
		for (size_t i = 0; i < n; i++) {
			if (res[i].rc < 0) {
				cli_fail(ctx, "%s", res[i].msg);
				rc = 1;
			} else {
				printf("%s: rewrapped, Vault key version %u -> %u%s\n", devs[i],
				       res[i].old_version, res[i].new_version,
				       res[i].old_version == res[i].new_version ? " (already the latest)" : "");
			}
		}
	}
	vsession_free(&vs);
	free(devs);
	free(hdrs);
	free(res);
	return rc;
}

/* ---- erase ------------------------------------------------------------------ */

static void erase_notice(void *arg, const char *line)
{
	(void)arg;
	printf("%s\n", line);
	fflush(stdout);
}

static int run_erase(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"header", required_argument, NULL, O_HEADER},
		{"yes", no_argument, NULL, O_YES},
		{"no-discard", no_argument, NULL, O_NO_DISCARD},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *header = NULL;
	bool yes = false;
	struct volume_erase_opts eo = {.notice = erase_notice};
	int c;
	while ((c = getopt_long(argc, argv, "hy", opts, NULL)) != -1) {
		switch (c) {
		case O_HEADER: header = optarg; break;
		case O_NO_DISCARD: eo.no_discard = true; break;
		case 'y':
		case O_YES: yes = true; break;
		case 'h':
			printf("Usage: wrapctl erase [--header FILE] [--no-discard] [--yes] DEVICE\n"
			       "Crypto-erase: destroy every wrapped volume key and digest in both header\n"
			       "copies, then discard the data area. The data can never be read again.\n"
			       "On a volume whose encrypt, rekey or decrypt was interrupted, the regions\n"
			       "that may still hold plaintext (and the conversion journal) are then\n"
			       "overwritten with zeros, which takes as long as writing them; rerun erase\n"
			       "if that is interrupted. --no-discard leaves the rest of the data area\n"
			       "in place (ciphertext nobody can decrypt).\n");
			return 0;
		default: return 2;
		}
	}
	if (argc - optind != 1)
		return cli_fail(ctx, "usage: wrapctl erase [--header FILE] [--no-discard] [--yes] DEVICE") + 1;
	const char *dev = argv[optind];
	if (!yes) {
		if (!isatty(STDIN_FILENO))
			return cli_fail(ctx, "%s: erase destroys the volume key for good; pass --yes to confirm", dev);
		fprintf(stderr, "This destroys the volume key of %s; its data will be unreadable.\n"
				"Type 'yes' to continue: ", dev);
		char line[16] = "";
		if (!fgets(line, sizeof(line), stdin) || strcmp(line, "yes\n"))
			return cli_fail(ctx, "%s: not erased", dev);
	}
	struct vopts vo = {.udev = -1};
	struct volume_ctx vctx;
	vctx_init(ctx, &vo, &vctx);
	struct werr err;
	werr_clear(&err);
	struct volume_erase_report rep;
	int r = volume_erase_opts(&vctx, dev, header, &eo, &rep, &err);
	if (r < 0)
		return cli_fail(ctx, "%s", werr_str(&err, r));
	printf("%s: crypto-erased\n", dev);
	if (rep.conversion[0])
		printf("  conversion found:   %s (its state is gone)\n", rep.conversion);
	if (rep.token_removed || rep.wrapped_keys)
		printf("  wrapped volume key: removed (wrapd-vault token%s deleted; %u in all)\n",
		       rep.wrapped_keys > 1 ? " and the rekey's new key" : "", rep.wrapped_keys);
	else
		printf("  wrapped volume key: none was present\n");
	printf("  volume key digest:  %s\n", rep.digest_destroyed ? "replaced by the digest of a random key" : "none was present");
	if (rep.digests > 1)
		printf("  other digests:      %u removed\n", rep.digests - 1);
	printf("  header copies:      %u rewritten\n", rep.copies_written);
	if (rep.overwritten) {
		char hb[32];
		double mib = (double)rep.overwritten / (1 << 20);
		snprintf(hb, sizeof(hb), "%.1f MiB", mib);
		printf("  plaintext regions:  overwrote %s with zeros in %.1f s (%.0f MiB/s): %s\n", hb,
		       rep.overwrite_seconds, rep.overwrite_seconds > 0 ? mib / rep.overwrite_seconds : 0,
		       rep.overwrite_what);
	}
	printf("  data area:          %s\n", rep.data_action);
	return 0;
}

/* ---- doctor ------------------------------------------------------------------ */

static int run_doctor(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{0},
	};
	struct vopts vo = {.udev = -1};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(ctx, c, &vo))
			continue;
		if (c == 'h') {
			printf("Usage: wrapctl doctor\nCheck what wrapd needs from this host and from Vault.\n%s",
			       common_help);
			return 0;
		}
		return 2;
	}
	struct volume_ctx vctx;
	vctx_init(ctx, &vo, &vctx);
	struct werr err;
	werr_clear(&err);
	struct vsession vs;
	int vr = vsession_open(ctx, &vs, &vctx, &err);
	struct volume_check checks[16];
	int n = volume_doctor(&vctx, checks, ARRAY_SIZE(checks));
	int fails = 0;
	for (int i = 0; i < n; i++) {
		struct volume_check *ck = &checks[i];
		if (vr < 0 && !strcmp(ck->name, "vault")) {
			ck->state = CHECK_FAIL;
			snprintf(ck->detail, sizeof(ck->detail), "%s", werr_str(&err, vr));
			snprintf(ck->hint, sizeof(ck->hint),
				 "set VAULT_ADDR and VAULT_TOKEN, or fix /etc/wrapd/wrapd.conf");
		}
		if (ck->state == CHECK_FAIL)
			fails++;
		printf("%-4s %-12s %s%s%s\n", volume_check_state_str(ck->state), ck->name, ck->detail,
		       ck->hint[0] && ck->state != CHECK_OK ? " -- " : "",
		       ck->hint[0] && ck->state != CHECK_OK ? ck->hint : "");
	}
	vsession_free(&vs);
	return fails ? 1 : 0;
}

const struct wrapctl_cmd cmd_open = {"open", "open a volume as /dev/mapper/NAME (or --all from the table)", run_open};
const struct wrapctl_cmd cmd_close = {"close", "close a mapping (or --all from the table)", run_close};
const struct wrapctl_cmd cmd_status = {"status", "show wrapd mappings (no Vault needed)", run_status};
const struct wrapctl_cmd cmd_rewrap = {"rewrap", "rewrap volume keys after a Vault key rotation", run_rewrap};
const struct wrapctl_cmd cmd_erase = {"erase", "crypto-erase a volume", run_erase};
const struct wrapctl_cmd cmd_doctor = {"doctor", "check this host and Vault for what wrapd needs", run_doctor};
