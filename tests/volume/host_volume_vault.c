/*
 * Host tests of volume/ against the Vault double: open failing cleanly
 * without dm (no loop, no key left), batched decrypt counted in the double's
 * log, a foreign token refused, Vault sealed, status without dm, rewrap after
 * a rotation, crypto-erase of a file, format (refusals before any Vault
 * request, the token and digest it writes) and the Vault overrides applied
 * in one place. On a kernel with dm-crypt the open
 * tests open for real and close again.
 */
#include "tests/lib/unit.h"
#include "tests/lib/loop.h"

#include "dm/dm.h"
#include "format/format.h"
#include "keyring/keyring.h"
#include "vault/vault.h"
#include "volume/volume.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>

struct env {
	char dir[64];
	char addr[64];
	struct vault_config cfg;
	struct vault_client *vc;
	struct volume_ctx vctx;
	struct wlog log;
	bool have_dm;
};
static struct env E;

/* ---- tiny HTTP client for the double's control API ----------------------- */

struct buf { char *p; size_t n; };
static size_t wcb(char *d, size_t s, size_t n, void *u)
{
	struct buf *b = u;
	char *np = realloc(b->p, b->n + s * n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = '\0';
	return s * n;
}

static json_t *http(const char *method, const char *path, const char *body, long *status)
{
	CURL *c = curl_easy_init();
	assert_non_null(c);
	char url[256];
	snprintf(url, sizeof(url), "%s%s", E.addr, path);
	struct buf b = {0};
	struct curl_slist *h = curl_slist_append(NULL, "X-Vault-Token: root");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wcb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	if (status)
		*status = st;
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
	free(b.p);
	return j;
}

/* Number of requests to path (suffix match) with method POST since seq. */
static int count_requests(const char *suffix, int *batch_size)
{
	json_t *log = http("GET", "/_double/log", NULL, NULL);
	assert_non_null(log);
	json_t *reqs = json_object_get(log, "requests");
	size_t i;
	json_t *r;
	int n = 0;
	json_array_foreach(reqs, i, r) {
		const char *p = json_string_value(json_object_get(r, "path"));
		if (p && strlen(p) >= strlen(suffix) && !strcmp(p + strlen(p) - strlen(suffix), suffix)) {
			n++;
			if (batch_size)
				*batch_size = (int)json_integer_value(json_object_get(r, "batch_size"));
		}
	}
	json_decref(log);
	return n;
}

/* ---- fixtures ----------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	snprintf(E.dir, sizeof(E.dir), "/tmp/wrapd-vt-XXXXXX");
	if (!mkdtemp(E.dir))
		return -1;
	/* The double is started the one shared way (tests/lib/vault-double.sh)
	 * by host_volume_vault.sh, which exports VAULT_ADDR and VAULT_TOKEN. */
	const char *addr = getenv("VAULT_ADDR");
	if (!addr || strncmp(addr, "http://127.0.0.1:", 17)) {
		fprintf(stderr, "host_volume_vault: run it through tests/volume/host_volume_vault.sh "
				"(it needs the Vault double's VAULT_ADDR)\n");
		return -1;
	}
	snprintf(E.addr, sizeof(E.addr), "%s", addr);
	struct werr e;
	werr_clear(&e);
	if (vault_config_load(&E.cfg, NULL, &e) < 0 || vault_client_new(&E.cfg, NULL, &E.vc, &e) < 0) {
		fprintf(stderr, "vault: %s\n", e.msg);
		return -1;
	}
	E.log = (struct wlog){.out = stderr, .level = WLOG_WARN, .prog = "test"};
	E.vctx = (struct volume_ctx){.log = &E.log, .vc = E.vc, .vcfg = &E.cfg, .udev = -1};
	E.have_dm = volume_dm_present();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vault_client_free(E.vc);
	vault_config_free(&E.cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", E.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Formats a file volume the way `wrapctl format` does. */
static void make_volume(const char *name, char *path, size_t pn, char uuid[37])
{
	snprintf(path, pn, "%s/%s.img", E.dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	assert_int_equal(luks2_uuid_generate(uuid), 0);
	char *ctx = NULL, *ct = NULL;
	assert_int_equal(vault_context_for_uuid(uuid, &ctx), 0);
	struct secbuf vk = {0};
	unsigned ver = 0;
	struct werr e;
	werr_clear(&e);
	int r = vault_datakey(E.vc, ctx, 512, &vk, &ct, &ver, &e);
	if (r < 0)
		fail_msg("datakey: %s", e.msg);
	struct luks2_new_params p = {.uuid = uuid};
	struct luks2_hdr *h = NULL;
	r = luks2_hdr_new(&p, &vk, &h, &e);
	if (r < 0)
		fail_msg("hdr_new: %s", e.msg);
	struct wrapd_token t = {
		.vault_addr = E.addr, .vault_namespace = "", .vault_mount = "transit",
		.vault_key = "wrapd", .key_version = ver, .ciphertext = ct, .context = ctx,
	};
	assert_int_equal(wrapd_token_set(h, &t, &e), 0);
	r = luks2_hdr_write(fd, h, path, &e);
	if (r < 0)
		fail_msg("write: %s", e.msg);
	luks2_hdr_free(h);
	secbuf_free(&vk);
	free(ctx);
	free(ct);
	close(fd);
}

static int read_token(const char *path, struct wrapd_token *t, struct luks2_hdr **hp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct luks2_hdr *h = NULL;
	struct werr e;
	assert_int_equal(luks2_hdr_read(fd, path, &h, NULL, &e), 0);
	close(fd);
	int r = wrapd_token_get(h, t, NULL, &e);
	if (hp)
		*hp = h;
	else
		luks2_hdr_free(h);
	return r;
}

static void assert_nothing_left(const char *path, const char *uuid)
{
	char *loop = NULL;
	assert_int_equal(loop_find(path, &loop, NULL), -ENOENT);
	char desc[KEYRING_DESC_MAX];
	assert_int_equal(keyring_desc_for(uuid, desc), 0);
	assert_int_equal(keyring_find_logon(desc, NULL), -ENOKEY);
}

static void close_if_dm(const char *name)
{
	if (!E.have_dm)
		return;
	struct werr e;
	assert_int_equal(volume_close(&E.vctx, name, false, false, &e), 0);
}

/* ---- tests ------------------------------------------------------------- */

static void open_without_dm_is_clean(void **state)
{
	(void)state;
	char path[128], uuid[37];
	make_volume("a", path, sizeof(path), uuid);
	struct volume_open_req req = {.device = path, .name = "wrapd-test-a"};
	struct werr e;
	werr_clear(&e);
	int r = volume_open(&E.vctx, &req, &e);
	if (E.have_dm) {
		assert_int_equal(r, 0);
		/* idempotent */
		assert_int_equal(volume_open(&E.vctx, &req, &e), 0);
		assert_true(req.already_open);
		close_if_dm("wrapd-test-a");
	} else {
		assert_int_equal(r, -ENODEV);
		assert_non_null(strstr(e.msg, "no device-mapper"));
		assert_non_null(strstr(e.msg, path));
	}
	assert_nothing_left(path, uuid);

	/* Status needs neither Vault nor dm. */
	struct volume_status *st = NULL;
	size_t n = 99;
	assert_int_equal(volume_status_list(&E.vctx, NULL, &st, &n, &e), 0);
	assert_int_equal(n, 0);
	free(st);
	assert_int_equal(volume_status_list(&E.vctx, "wrapd-test-a", &st, &n, &e), -ENOENT);
}

static void batch_open_one_decrypt(void **state)
{
	(void)state;
	enum { N = 5 };
	char paths[N][128], uuids[N][37], names[N][32];
	struct volume_open_req reqs[N];
	memset(reqs, 0, sizeof(reqs));
	for (int i = 0; i < N; i++) {
		char nm[8];
		snprintf(nm, sizeof(nm), "b%d", i);
		make_volume(nm, paths[i], sizeof(paths[i]), uuids[i]);
		snprintf(names[i], sizeof(names[i]), "wrapd-test-b%d", i);
		reqs[i].device = paths[i];
		reqs[i].name = names[i];
	}
	int before = count_requests("/transit/decrypt/wrapd", NULL);
	struct werr e;
	werr_clear(&e);
	int r = volume_open_many(&E.vctx, reqs, N, &e);
	int bs = 0;
	assert_int_equal(count_requests("/transit/decrypt/wrapd", &bs), before + 1);
	assert_int_equal(bs, N);
	for (int i = 0; i < N; i++) {
		if (E.have_dm) {
			assert_int_equal(reqs[i].rc, 0);
			close_if_dm(names[i]);
		} else {
			assert_int_equal(reqs[i].rc, -ENODEV);
		}
		assert_nothing_left(paths[i], uuids[i]);
	}
	if (!E.have_dm)
		assert_int_equal(r, -ENODEV);
}

static void foreign_token_refused(void **state)
{
	(void)state;
	char pa[128], pb[128], ua[37], ub[37];
	make_volume("fa", pa, sizeof(pa), ua);
	make_volume("fb", pb, sizeof(pb), ub);
	/* Put A's token into B's header. */
	struct wrapd_token ta;
	assert_int_equal(read_token(pa, &ta, NULL), 0);
	int fd = open(pb, O_RDWR | O_CLOEXEC);
	struct luks2_hdr *hb = NULL;
	struct werr e;
	assert_int_equal(luks2_hdr_read(fd, pb, &hb, NULL, &e), 0);
	assert_int_equal(wrapd_token_set(hb, &ta, &e), 0);
	assert_int_equal(luks2_hdr_write(fd, hb, pb, &e), 0);
	luks2_hdr_free(hb);
	close(fd);
	wrapd_token_free(&ta);

	int before = count_requests("/transit/decrypt/wrapd", NULL);
	struct volume_open_req req = {.device = pb, .name = "wrapd-test-f"};
	werr_clear(&e);
	assert_int_equal(volume_open(&E.vctx, &req, &e), -EPERM);
	assert_non_null(strstr(e.msg, "bound to another volume"));
	/* Refused before Vault was asked. */
	assert_int_equal(count_requests("/transit/decrypt/wrapd", NULL), before);
	assert_nothing_left(pb, ub);
}

static void vault_sealed_is_clean(void **state)
{
	(void)state;
	char path[128], uuid[37];
	make_volume("s", path, sizeof(path), uuid);
	long st = 0;
	json_decref(http("POST", "/_double/seal", "{}", &st));
	struct volume_open_req req = {.device = path, .name = "wrapd-test-s"};
	struct werr e;
	werr_clear(&e);
	int r = volume_open(&E.vctx, &req, &e);
	json_decref(http("POST", "/_double/unseal", "{}", &st));
	assert_true(r < 0);
	assert_non_null(strstr(e.msg, "Vault could not unwrap"));
	assert_nothing_left(path, uuid);
}

static void rewrap_after_rotation(void **state)
{
	(void)state;
	char path[128], uuid[37];
	make_volume("r", path, sizeof(path), uuid);
	struct wrapd_token before, after;
	assert_int_equal(read_token(path, &before, NULL), 0);
	long st = 0;
	json_decref(http("POST", "/v1/transit/keys/wrapd/rotate", "{}", &st));
	assert_int_equal(st, 200);

	const char *devs[] = {path};
	struct volume_rewrap_result res[1];
	struct werr e;
	werr_clear(&e);
	int r = volume_rewrap(&E.vctx, devs, NULL, 1, res, &e);
	if (r < 0)
		fail_msg("rewrap: %s / %s", e.msg, res[0].msg);
	assert_int_equal(res[0].old_version, before.key_version);
	assert_int_equal(res[0].new_version, before.key_version + 1);
	struct luks2_hdr *h = NULL;
	assert_int_equal(read_token(path, &after, &h), 0);
	assert_int_equal(after.key_version, before.key_version + 1);
	assert_string_not_equal(after.ciphertext, before.ciphertext);
	assert_string_equal(after.context, before.context);
	/* The new ciphertext still unwraps to the VK the digest knows. */
	struct secbuf vk = {0};
	assert_int_equal(vault_decrypt(E.vc, after.ciphertext, after.context, &vk, &e), 0);
	assert_int_equal(luks2_vk_verify(h, &vk, &e), 0);
	secbuf_free(&vk);
	luks2_hdr_free(h);
	wrapd_token_free(&before);
	wrapd_token_free(&after);
}

static void erase_file(void **state)
{
	(void)state;
	char path[128], uuid[37];
	make_volume("e", path, sizeof(path), uuid);
	/* Some data to punch out. */
	int fd = open(path, O_RDWR | O_CLOEXEC);
	char blk[65536];
	memset(blk, 0xa5, sizeof(blk));
	for (int i = 0; i < 64; i++)
		assert_int_equal(write_full_at(fd, blk, sizeof(blk), (16 << 20) + i * (off_t)sizeof(blk)), 0);
	fsync(fd);
	struct stat s1, s2;
	fstat(fd, &s1);
	close(fd);

	struct volume_erase_report rep;
	struct werr e;
	werr_clear(&e);
	int r = volume_erase(&E.vctx, path, NULL, &rep, &e);
	if (r < 0)
		fail_msg("erase: %s", e.msg);
	assert_true(rep.token_removed);
	assert_true(rep.digest_destroyed);
	assert_int_equal(rep.copies_written, 2);
	assert_non_null(strstr(rep.data_action, "punched holes"));
	stat(path, &s2);
	assert_true(s2.st_blocks < s1.st_blocks);
	assert_int_equal(s2.st_size, s1.st_size);

	struct wrapd_token t;
	assert_int_equal(read_token(path, &t, NULL), -ENOENT);
	/* Both copies: the secondary alone must not carry the token either. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	char zero[4096] = {0};
	assert_int_equal(write_full_at(fd, zero, sizeof(zero), 0), 0); /* kill the primary */
	close(fd);
	assert_int_equal(read_token(path, &t, NULL), -ENOENT);

	struct volume_open_req req = {.device = path, .name = "wrapd-test-e"};
	werr_clear(&e);
	assert_int_equal(volume_open(&E.vctx, &req, &e), -ENOKEY);
	assert_non_null(strstr(e.msg, "crypto-erased"));
}

/* erase asks blockdev/ who uses the device, names it, and changes nothing:
 * a file under a loop at an offset; a block device (a loop) under another
 * loop, and held O_EXCL by someone else. */
static void erase_refused_while_used(void **state)
{
	(void)state;
	char path[128], uuid[37], l1[64], l2[64], args[300];
	make_volume("eu", path, sizeof(path), uuid);
	snprintf(args, sizeof(args), "-o 16777216 '%s'", path);
	test_losetup(args, l1, sizeof(l1));
	if (!l1[0])
		skip();
	struct volume_erase_report rep;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(volume_erase(&E.vctx, path, NULL, &rep, &e), -EBUSY);
	char want[512];
	snprintf(want, sizeof(want), "%s: in use: held by loop device %s (backed at offset 16777216); "
		 "detach it first (losetup -d %s)", path, l1, l1);
	assert_string_equal(e.msg, want);
	test_losetup_d(l1);
	struct wrapd_token t;
	assert_int_equal(read_token(path, &t, NULL), 0);
	wrapd_token_free(&t);

	/* The volume as a block device: l1 carries the header at offset 0. */
	snprintf(args, sizeof(args), "'%s'", path);
	test_losetup(args, l1, sizeof(l1));
	assert_true(l1[0]);
	snprintf(args, sizeof(args), "-o 4096 %s", l1);
	test_losetup(args, l2, sizeof(l2));
	assert_true(l2[0]);
	werr_clear(&e);
	assert_int_equal(volume_erase(&E.vctx, l1, NULL, &rep, &e), -EBUSY);
	snprintf(want, sizeof(want), "held by loop device %s (backed at offset 4096)", l2);
	assert_non_null(strstr(e.msg, want));
	test_losetup_d(l2);
	int x = open(l1, O_RDONLY | O_EXCL | O_CLOEXEC);
	assert_true(x >= 0);
	werr_clear(&e);
	assert_int_equal(volume_erase(&E.vctx, l1, NULL, &rep, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "in use: opened exclusively by another program"));
	close(x);
	assert_int_equal(read_token(path, &t, NULL), 0);
	wrapd_token_free(&t);
	/* Nothing uses it now: erase goes through on the block device. */
	werr_clear(&e);
	int r = volume_erase(&E.vctx, l1, NULL, &rep, &e);
	if (r < 0)
		fail_msg("erase: %s", e.msg);
	assert_true(rep.token_removed);
	test_losetup_d(l1);
	assert_int_equal(read_token(path, &t, NULL), -ENOENT);
}


/* ---- format and the Vault overrides ------------------------------------ */

static void format_file(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/f.img", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	close(fd);
	int before = count_requests("/datakey/plaintext/wrapd", NULL);
	struct volume_format_req rq = {.device = path, .name = "vol-f", .label = "lab",
				       .sector_size = 512};
	struct volume_format_result res;
	struct werr e;
	werr_clear(&e);
	int r = volume_format(&E.vctx, &rq, &res, &e);
	if (r < 0)
		fail_msg("format: %s", e.msg);
	assert_int_equal(count_requests("/datakey/plaintext/wrapd", NULL), before + 1);
	assert_true(luks2_uuid_valid(res.uuid));
	assert_string_equal(res.vault_mount, "transit");
	assert_string_equal(res.vault_key, "wrapd");
	assert_true(res.key_version >= 1);

	struct wrapd_token t;
	struct luks2_hdr *h = NULL;
	assert_int_equal(read_token(path, &t, &h), 0);
	assert_string_equal(h->uuid, res.uuid);
	assert_string_equal(h->label, "lab");
	assert_int_equal(h->sector_size, 512);
	assert_int_equal(h->data_offset, WRAPD_DEFAULT_DATA_OFFSET);
	assert_string_equal(t.vault_key, "wrapd");
	assert_int_equal(t.key_version, res.key_version);
	assert_string_equal(t.vault_addr, E.addr);
	assert_non_null(t.volume_name);
	assert_string_equal(t.volume_name, "vol-f");
	char *want = NULL;
	assert_int_equal(vault_context_for_uuid(res.uuid, &want), 0);
	assert_string_equal(t.context, want);
	free(want);
	/* The wrapped key unwraps to the key the digest knows. */
	struct secbuf vk = {0};
	assert_int_equal(vault_decrypt(E.vc, t.ciphertext, t.context, &vk, &e), 0);
	assert_int_equal(luks2_vk_verify(h, &vk, &e), 0);
	secbuf_free(&vk);
	wrapd_token_free(&t);
	luks2_hdr_free(h);

	/* Again without force: the LUKS signature is refused, nothing asked. */
	before = count_requests("/datakey/plaintext/wrapd", NULL);
	werr_clear(&e);
	rq.name = NULL;
	assert_int_equal(volume_format(&E.vctx, &rq, &res, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "crypto_LUKS"));
	assert_non_null(strstr(e.msg, "--force"));
	assert_int_equal(count_requests("/datakey/plaintext/wrapd", NULL), before);
	/* With force: a new volume; the token has no name now. */
	rq.force = true;
	werr_clear(&e);
	assert_int_equal(volume_format(&E.vctx, &rq, &res, &e), 0);
	assert_int_equal(read_token(path, &t, &h), 0);
	assert_string_equal(h->uuid, res.uuid);
	assert_null(t.volume_name);
	wrapd_token_free(&t);
	luks2_hdr_free(h);
}

static void format_refusals(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/r.img", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (16 << 20) + 8192 + 512), 0);
	close(fd);
	int before = count_requests("/datakey/plaintext/wrapd", NULL);
	static const struct {
		struct volume_format_req rq;
		int rc;
		const char *needle;
	} cases[] = {
		{{.label = "0123456789012345678901234567890123456789012345678"}, -EINVAL, "47"},
		{{.data_offset = 12345}, -EINVAL, "multiple of 4096"},
		{{.data_offset = 4096}, -EINVAL, "too small"},
		{{.sector_size = 1000}, -EINVAL, "sector size 1000"},
		{{.data_offset = 32 << 20}, -ENOSPC, "too small"},
		{{0}, -EINVAL, "not a multiple of the sector size"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct volume_format_req rq = cases[i].rq;
		rq.device = path;
		struct volume_format_result res;
		struct werr e;
		werr_clear(&e);
		int r = volume_format(&E.vctx, &rq, &res, &e);
		if (r != cases[i].rc || !strstr(e.msg, cases[i].needle))
			fail_msg("case %zu: rc %d (%s), want %d and '%s'", i, r, e.msg, cases[i].rc,
				 cases[i].needle);
		assert_non_null(strstr(e.msg, path));
	}
	struct volume_format_req rq = {.device = "/nonexistent/x.img"};
	struct volume_format_result res;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(volume_format(&E.vctx, &rq, &res, &e), -ENOENT);
	assert_int_equal(count_requests("/datakey/plaintext/wrapd", NULL), before);
	/* Nothing was written. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	struct luks2_hdr *h = NULL;
	assert_int_equal(luks2_hdr_read(fd, path, &h, NULL, &e), -ENODEV);
	close(fd);
}

/* format asks blockdev/ too: a file under a loop device (at an offset) and
 * a block device under another loop are refused by name, before Vault is
 * asked and with nothing written. */
static void format_refused_while_used(void **state)
{
	(void)state;
	char path[128], l1[64], l2[64], args[300];
	snprintf(path, sizeof(path), "%s/fu.img", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	close(fd);
	snprintf(args, sizeof(args), "-o 1048576 '%s'", path);
	test_losetup(args, l1, sizeof(l1));
	if (!l1[0])
		skip();
	int before = count_requests("/datakey/plaintext/wrapd", NULL);
	struct volume_format_req rq = {.device = path};
	struct volume_format_result res;
	struct werr e;
	werr_clear(&e);
	int r = volume_format(&E.vctx, &rq, &res, &e);
	test_losetup_d(l1);
	assert_int_equal(r, -EBUSY);
	char want[512];
	snprintf(want, sizeof(want), "%s: in use: held by loop device %s (backed at offset 1048576); "
		 "detach it first (losetup -d %s)", path, l1, l1);
	assert_string_equal(e.msg, want);

	snprintf(args, sizeof(args), "'%s'", path);
	test_losetup(args, l1, sizeof(l1));
	assert_true(l1[0]);
	snprintf(args, sizeof(args), "%s", l1);
	test_losetup(args, l2, sizeof(l2));
	assert_true(l2[0]);
	rq.device = l1;
	werr_clear(&e);
	r = volume_format(&E.vctx, &rq, &res, &e);
	test_losetup_d(l2);
	test_losetup_d(l1);
	assert_int_equal(r, -EBUSY);
	snprintf(want, sizeof(want), "%s: in use: held by loop device %s (backed at offset 0)", l1, l2);
	assert_non_null(strstr(e.msg, want));
	assert_int_equal(count_requests("/datakey/plaintext/wrapd", NULL), before);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	struct luks2_hdr *h = NULL;
	assert_int_equal(luks2_hdr_read(fd, path, &h, NULL, &e), -ENODEV);
	close(fd);
}

static void vault_overrides(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(vault_config_load(&cfg, NULL, &e), 0);
	struct volume_vault_opts o = {.key = "other", .mount = "m/n", .addr = "http://127.0.0.1:9"};
	assert_int_equal(volume_vault_apply(&cfg, &o, &e), 0);
	assert_string_equal(cfg.key, "other");
	assert_string_equal(cfg.mount, "m/n");
	assert_string_equal(cfg.addr, "http://127.0.0.1:9");
	assert_true(volume_vault_opts_key_explicit(&o));
	o = (struct volume_vault_opts){.addr = E.addr};
	assert_false(volume_vault_opts_key_explicit(&o));
	/* No overrides: unchanged. */
	assert_int_equal(volume_vault_apply(&cfg, NULL, &e), 0);
	assert_string_equal(cfg.key, "other");
	static const struct {
		struct volume_vault_opts o;
		const char *msg;
	} bad[] = {
		{{.key = "../sys"}, "--vault-key: vault_key '../sys' may hold only"},
		{{.key = "a/b"}, "--vault-key: vault_key 'a/b' may hold only"},
		{{.mount = "a/../b"}, "--vault-mount: vault_mount 'a/../b' may hold only"},
		{{.mount = ""}, "--vault-mount: empty value"},
		{{.addr = "ftp://x"}, "--vault-addr: vault_addr must start with"},
		{{.addr = "http://x/?a"}, "--vault-addr: vault_addr is not a plain URL"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		werr_clear(&e);
		assert_int_equal(volume_vault_apply(&cfg, &bad[i].o, &e), -EINVAL);
		if (strncmp(e.msg, bad[i].msg, strlen(bad[i].msg)))
			fail_msg("case %zu: '%s', want '%s'", i, e.msg, bad[i].msg);
		/* A refused override changes nothing. */
		assert_string_equal(cfg.key, "other");
		assert_string_equal(cfg.addr, "http://127.0.0.1:9");
	}
	vault_config_free(&cfg);
}

/* ---- conversions through volume_convert (keys from the double) ---------- */

static void fill_pattern(uint8_t *b, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = (off + i) * 0x9e3779b97f4a7c15ull;
		memcpy(b + i, &v, 8);
	}
}

static void convert_round_trip(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/c.img", E.dir);
	const size_t mib = 1 << 20, used = 31 * mib;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 48 << 20), 0);
	uint8_t *b = malloc(mib), *r = malloc(mib);
	assert_non_null(b);
	assert_non_null(r);
	for (size_t off = 0; off < used; off += mib) {
		fill_pattern(b, mib, off);
		assert_int_equal(write_full_at(fd, b, mib, (off_t)off), 0);
	}
	close(fd);

	struct volume_convert_req rq = {.device = path, .tail_is_free = true};
	struct conv_result res;
	struct werr e;
	werr_clear(&e);
	int dk = count_requests("/datakey/plaintext/wrapd", NULL);
	int r0 = volume_encrypt(&E.vctx, &rq, &res, &e);
	if (r0 < 0)
		fail_msg("encrypt: %s", e.msg);
	assert_int_equal(res.op, CONV_ENCRYPT);
	assert_int_equal(count_requests("/datakey/plaintext/wrapd", NULL), dk + 1);
	struct wrapd_token t1, t2;
	struct luks2_hdr *h = NULL;
	assert_int_equal(read_token(path, &t1, &h), 0);
	assert_string_equal(h->uuid, res.uuid);
	assert_string_equal(t1.vault_key, "wrapd");
	luks2_hdr_free(h);

	/* rekey: a new datakey, the old one unwrapped with the token's key. */
	int dec = count_requests("/decrypt/wrapd", NULL);
	werr_clear(&e);
	r0 = volume_rekey(&E.vctx, &rq, &res, &e);
	if (r0 < 0)
		fail_msg("rekey: %s", e.msg);
	assert_int_equal(count_requests("/datakey/plaintext/wrapd", NULL), dk + 2);
	assert_int_equal(count_requests("/decrypt/wrapd", NULL), dec + 1);
	assert_int_equal(read_token(path, &t2, NULL), 0);
	assert_string_not_equal(t1.ciphertext, t2.ciphertext);

	/* An explicit key the volume is not wrapped with: refused by Vault,
	 * the volume stays as it was. */
	struct vault_config other = E.cfg;
	other.key = "nokey";
	struct volume_ctx vx = {.log = &E.log, .vcfg = &other, .vault_key_explicit = true};
	werr_clear(&e);
	assert_true(volume_decrypt(&vx, &rq, &res, &e) < 0);
	wrapd_token_free(&t1);
	assert_int_equal(read_token(path, &t1, NULL), 0);
	assert_string_equal(t1.ciphertext, t2.ciphertext);

	werr_clear(&e);
	r0 = volume_decrypt(&E.vctx, &rq, &res, &e);
	if (r0 < 0)
		fail_msg("decrypt: %s", e.msg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(luks2_hdr_read(fd, path, &h, NULL, &e), -ENODEV);
	for (size_t off = 0; off < used; off += mib) {
		fill_pattern(b, mib, off);
		assert_int_equal(read_full_at(fd, r, mib, (off_t)off), 0);
		assert_memory_equal(b, r, mib);
	}
	close(fd);
	free(b);
	free(r);
	wrapd_token_free(&t1);
	wrapd_token_free(&t2);
}

/* ---- header backup and restore through the library ----------------------- */

static void header_backup_restore(void **state)
{
	(void)state;
	char a[128], b[128], ua[37], ub[37], bk[160];
	make_volume("ha", a, sizeof(a), ua);
	make_volume("hb", b, sizeof(b), ub);
	snprintf(bk, sizeof(bk), "%s/ha.bk", E.dir);
	struct volume_header_info info;
	struct werr e;
	werr_clear(&e);
	int r = volume_header_backup(&E.vctx, a, bk, &info, &e);
	if (r < 0)
		fail_msg("backup: %s", e.msg);
	assert_string_equal(info.uuid, ua);
	assert_int_equal(info.bytes, 16 << 20);
	struct stat st;
	assert_int_equal(stat(bk, &st), 0);
	assert_int_equal(st.st_size, 16 << 20);
	assert_int_equal(st.st_mode & 0777, 0600);
	werr_clear(&e);
	assert_int_equal(volume_header_backup(&E.vctx, a, bk, &info, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "already exists"));

	/* Same volume: fine. Another volume: refused, then forced. */
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, a, bk, false, &info, &e), 0);
	assert_string_equal(info.uuid, ua);
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, b, bk, false, &info, &e), -EPERM);
	assert_non_null(strstr(e.msg, "has UUID"));
	struct wrapd_token t;
	struct luks2_hdr *h = NULL;
	assert_int_equal(read_token(b, &t, &h), 0);
	assert_string_equal(h->uuid, ub);
	luks2_hdr_free(h);
	wrapd_token_free(&t);
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, b, bk, true, &info, &e), 0);
	assert_int_equal(read_token(b, &t, &h), 0);
	assert_string_equal(h->uuid, ua);
	luks2_hdr_free(h);
	wrapd_token_free(&t);
}

/* ---- restore over a conversion in progress (issue 10 item 5) ------------- */

/* Stops a conversion at its first checkpoint after the first write. */
static volatile sig_atomic_t stop_now;
static void stop_on_progress(void *arg, const struct conv_progress *p)
{
	(void)arg;
	(void)p;
	stop_now = 1;
}

static uint64_t seqid_of(const char *path)
{
	struct wrapd_token t;
	struct luks2_hdr *h = NULL;
	read_token(path, &t, &h);
	uint64_t s = h->seqid;
	wrapd_token_free(&t);
	luks2_hdr_free(h);
	return s;
}

static void restore_refuses_stale_conversion(void **state)
{
	(void)state;
	char path[128], b0[160], b1[160];
	snprintf(path, sizeof(path), "%s/rc.img", E.dir);
	snprintf(b0, sizeof(b0), "%s/rc.b0", E.dir);
	snprintf(b1, sizeof(b1), "%s/rc.b1", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 96 << 20), 0);
	close(fd);
	struct volume_convert_req rq = {.device = path, .tail_is_free = true};
	struct conv_result res;
	struct volume_header_info info;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(volume_encrypt(&E.vctx, &rq, &res, &e), 0);
	assert_int_equal(volume_header_backup(&E.vctx, path, b0, &info, &e), 0);

	/* A rekey stopped after its first hotzone, backed up, then moved on. */
	rq.progress = stop_on_progress;
	rq.stop = &stop_now;
	stop_now = 0;
	assert_int_equal(volume_rekey(&E.vctx, &rq, &res, &e), -EINTR);
	assert_int_equal(volume_header_backup(&E.vctx, path, b1, &info, &e), 0);
	stop_now = 0;
	werr_clear(&e);
	assert_int_equal(volume_resume(&E.vctx, &rq, &res, &e), -EINTR);
	uint64_t seq = seqid_of(path);

	/* The pre-conversion backup would mark the device as whole. */
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, path, b0, false, &info, &e), -EPERM);
	assert_non_null(strstr(e.msg, "conversion is in progress"));
	assert_non_null(strstr(e.msg, "predates it"));
	assert_null(strchr(e.msg, '\n'));
	/* The older checkpoint would make resume redo moved data. */
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, path, b1, false, &info, &e), -EPERM);
	assert_non_null(strstr(e.msg, "older than the header on the device"));
	assert_non_null(strstr(e.msg, "stale"));
	assert_int_equal(seqid_of(path), seq);

	/* Finished: the old backup is still a sequence id going backwards. */
	rq.progress = NULL;
	rq.stop = NULL;
	werr_clear(&e);
	assert_int_equal(volume_resume(&E.vctx, &rq, &res, &e), 0);
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, path, b0, false, &info, &e), -EPERM);
	assert_non_null(strstr(e.msg, "older than the header on the device"));
	assert_null(strstr(e.msg, "stale"));
	/* --force rolls back on purpose. */
	werr_clear(&e);
	assert_int_equal(volume_header_restore(&E.vctx, path, b0, true, &info, &e), 0);
}

/* ---- rewrap during a rekey (issue 10 item 6) ------------------------------ */

static unsigned state_new_key_version(const char *path, char *ct, size_t n)
{
	struct wrapd_token t;
	struct luks2_hdr *h = NULL;
	read_token(path, &t, &h);
	wrapd_token_free(&t);
	json_t *st = NULL;
	struct werr e;
	assert_int_equal(luks2_conversion_get(h, &st, &e), 0);
	json_t *nt = json_object_get(st, "new_token");
	snprintf(ct, n, "%s", json_string_value(json_object_get(nt, "ciphertext")));
	unsigned v = (unsigned)json_integer_value(json_object_get(nt, "key_version"));
	json_decref(st);
	luks2_hdr_free(h);
	return v;
}

static void rewrap_during_rekey(void **state)
{
	(void)state;
	char path[128], ct0[512], ct1[512];
	snprintf(path, sizeof(path), "%s/rr.img", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 96 << 20), 0);
	close(fd);
	struct volume_convert_req rq = {.device = path, .tail_is_free = true};
	struct conv_result res;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(volume_encrypt(&E.vctx, &rq, &res, &e), 0);
	rq.progress = stop_on_progress;
	rq.stop = &stop_now;
	stop_now = 0;
	assert_int_equal(volume_rekey(&E.vctx, &rq, &res, &e), -EINTR);
	unsigned v0 = state_new_key_version(path, ct0, sizeof(ct0));

	long st = 0;
	json_decref(http("POST", "/v1/transit/keys/wrapd/rotate", "{}", &st));
	assert_int_equal(st, 200);
	json_t *ki = http("GET", "/v1/transit/keys/wrapd", NULL, NULL);
	int latest = (int)json_integer_value(json_object_get(json_object_get(ki, "data"), "latest_version"));
	json_decref(ki);
	assert_int_equal(latest, (int)v0 + 1);

	const char *devs[] = {path};
	struct volume_rewrap_result rr;
	werr_clear(&e);
	int r = volume_rewrap(&E.vctx, devs, NULL, 1, &rr, &e);
	if (r < 0)
		fail_msg("rewrap: %s", rr.msg);
	assert_int_equal(rr.new_version, (unsigned)latest);
	/* Both wrapped keys moved to the latest version. */
	unsigned v1 = state_new_key_version(path, ct1, sizeof(ct1));
	assert_int_equal(v1, (unsigned)latest);
	assert_string_not_equal(ct0, ct1);

	/* Older versions can no longer be decrypted: the rekey still finishes. */
	char body[64];
	snprintf(body, sizeof(body), "{\"min_decryption_version\": %d}", latest);
	json_decref(http("POST", "/v1/transit/keys/wrapd/config", body, &st));
	assert_true(st == 200 || st == 204);
	rq.progress = NULL;
	rq.stop = NULL;
	werr_clear(&e);
	r = volume_resume(&E.vctx, &rq, &res, &e);
	if (r < 0)
		fail_msg("resume after min_decryption_version: %s", e.msg);
	struct wrapd_token t;
	assert_int_equal(read_token(path, &t, NULL), 0);
	assert_string_equal(t.ciphertext, ct1);
	wrapd_token_free(&t);
	json_decref(http("POST", "/v1/transit/keys/wrapd/config", "{\"min_decryption_version\": 1}", &st));
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_volume_vault needs root (loop devices, keyring)\n");
		return 77;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_without_dm_is_clean),
		cmocka_unit_test(batch_open_one_decrypt),
		cmocka_unit_test(foreign_token_refused),
		cmocka_unit_test(vault_sealed_is_clean),
		cmocka_unit_test(rewrap_after_rotation),
		cmocka_unit_test(erase_file),
		cmocka_unit_test(erase_refused_while_used),
		cmocka_unit_test(format_file),
		cmocka_unit_test(format_refusals),
		cmocka_unit_test(format_refused_while_used),
		cmocka_unit_test(vault_overrides),
		cmocka_unit_test(convert_round_trip),
		cmocka_unit_test(header_backup_restore),
		cmocka_unit_test(restore_refuses_stale_conversion),
		cmocka_unit_test(rewrap_during_rekey),
	};
	int r = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return r;
}
