/*
 * dm: device-mapper operations through libdevmapper.
 */
#include "dm/dm.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdevmapper.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

/* ---- libdevmapper's process-wide settings, scoped to one call ----------- */

/* libdevmapper logs through one process-wide function. While one of our
 * calls runs, this thread's messages go to that call's ctx->log; outside our
 * calls (log_ctx NULL) they are dropped rather than printed to stderr, since
 * every failure we return carries its own message. */
static _Thread_local const struct dmcrypt_ctx *log_ctx;

__attribute__((format(printf, 5, 6)))
static void libdm_log(int level, const char *file, int line, int dm_errno_or_class,
		      const char *fmt, ...)
{
	const struct dmcrypt_ctx *ctx = log_ctx;
	/* Levels are syslog's (3 error, 4 warning, ... 7 debug) plus flag bits. */
	if (!ctx || !ctx->log || (level & 7) > 4)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	wlog_debug(ctx->log, "libdevmapper: %s", msg);
}

static void session_begin(const struct dmcrypt_ctx *ctx)
{
	dm_log_with_errno_init(libdm_log);
	log_ctx = ctx;
	/* Without udev there is nobody to answer the cookie semaphore, and
	 * libdevmapper must create and remove /dev/mapper nodes itself. */
	dm_udev_set_sync_support(ctx->udev ? 1 : 0);
}

static void session_endp(const struct dmcrypt_ctx **ctx)
{
	(void)ctx;
	log_ctx = NULL;
}
#define DM_SESSION(ctx)                                                          \
	__attribute__((cleanup(session_endp), unused)) const struct dmcrypt_ctx *   \
		_dm_session = (session_begin(ctx), (ctx))

static void dm_task_destroyp(struct dm_task **t)
{
	if (*t)
		dm_task_destroy(*t);
}
#define _cleanup_dm_task_ _cleanup_(dm_task_destroyp)

void dmcrypt_ctx_init(struct dmcrypt_ctx *ctx, const struct wlog *log)
{
	*ctx = (struct dmcrypt_ctx){
		.udev = access("/run/udev/control", F_OK) == 0,
		.log = log,
		.remove_retries = 5,
		.retry_delay_ms = 200,
	};
}

/* ---- helpers --------------------------------------------------------------- */

static bool dm_in_kernel(void)
{
	_cleanup_free_ char *devices = NULL;
	if (read_file("/proc/devices", 1 << 16, &devices, NULL) < 0)
		return true; /* cannot tell: do not claim otherwise */
	return strstr(devices, " device-mapper\n") != NULL;
}

static int task_errno(struct dm_task *dmt)
{
	int e = dm_task_get_errno(dmt);
	return e > 0 ? -e : -EIO;
}

/* A generic failure line; callers add their own for the errors they expect. */
static int dm_fail(struct werr *err, int rc, const char *what, const char *name)
{
	if (!dm_in_kernel())
		return werr_set(err, -ENODEV, "%s %s: this kernel has no device-mapper "
				"(try 'modprobe dm-crypt')", what, name);
	if (rc == -ENXIO)
		return werr_set(err, rc, "%s %s: no such device-mapper mapping", what, name);
	return werr_set(err, rc, "%s %s: device-mapper: %s", what, name, strerror(-rc));
}

static struct dm_task *task_for(int type, const char *name)
{
	struct dm_task *dmt = dm_task_create(type);
	if (!dmt)
		return NULL;
	if (name && !dm_task_set_name(dmt, name)) {
		dm_task_destroy(dmt);
		return NULL;
	}
	return dmt;
}

/* Runs a task that creates, removes or resumes a device node. With udev the
 * cookie makes us wait until udev has made or removed /dev/mapper/<name>;
 * without it libdevmapper does that itself in dm_task_update_nodes(). */
static int run_node_task(const struct dmcrypt_ctx *ctx, struct dm_task *dmt)
{
	uint32_t cookie = 0;
	if (ctx->udev) {
		if (!dm_task_set_cookie(dmt, &cookie, 0))
			return -ENOMEM;
	}
	int rc = dm_task_run(dmt) ? 0 : task_errno(dmt);
	if (ctx->udev)
		(void)dm_udev_wait(cookie); /* also on failure: it releases the cookie */
	else
		dm_task_update_nodes();
	return rc;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- create / reload / suspend / resume ---------------------------------- */

static int add_lines(struct dm_task *dmt, const struct dm_line *lines, size_t n);

/* Creates `name` with dm UUID `uuid`, loads lines[0..n) and resumes it; on
 * failure removes the empty device again and returns the errno of the step
 * that failed (*at_create: the create itself, e.g. the name is taken). No
 * message: the callers word the errors they expect. Three steps, as
 * libdevmapper's one-shot create does internally, but with the table load on
 * its own so its errno (ENOKEY for a missing key) reaches the caller instead
 * of the errno of the cleanup. */
static int create_lines(const struct dmcrypt_ctx *ctx, const char *name, const char *uuid,
			const struct dm_line *lines, size_t n, bool read_only, bool *at_create)
{
	DM_SESSION(ctx);
	int rc = 0;
	*at_create = true;
	{
		_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_CREATE, name);
		if (!dmt || !dm_task_set_uuid(dmt, uuid) ||
		    !dm_task_set_add_node(dmt, DM_ADD_NODE_ON_RESUME))
			return -ENOMEM;
		if (!dm_task_run(dmt))
			return task_errno(dmt);
	}
	*at_create = false;
	{
		_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_RELOAD, name);
		if (!dmt || (read_only && !dm_task_set_ro(dmt)) ||
		    /* Have the kernel wipe its ioctl buffers: tables sit next to keys. */
		    !dm_task_secure_data(dmt))
			rc = -ENOMEM;
		else if ((rc = add_lines(dmt, lines, n)) == 0 && !dm_task_run(dmt))
			rc = task_errno(dmt);
	}
	if (rc == 0) {
		_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_RESUME, name);
		if (!dmt || !dm_task_set_add_node(dmt, DM_ADD_NODE_ON_RESUME))
			rc = -ENOMEM;
		else
			rc = run_node_task(ctx, dmt);
		if (rc == 0)
			return 0;
	}
	/* Undo the empty device; the error that matters is the one above. */
	{
		_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_REMOVE, name);
		if (dmt)
			(void)run_node_task(ctx, dmt);
	}
	return rc;
}

int dmcrypt_create(const struct dmcrypt_ctx *ctx, const char *name, const char *luks_uuid,
		   const struct dmcrypt_table *t, bool read_only, struct werr *err)
{
	char uuid[DMCRYPT_UUID_MAX + 1];
	if (!dmcrypt_name_valid(name))
		return werr_set(err, -EINVAL, "'%s' is not a valid mapping name", name ? name : "");
	int rc = dmcrypt_dm_uuid(luks_uuid, name, uuid, sizeof(uuid));
	if (rc < 0)
		return werr_set(err, rc, "%s: cannot form a dm UUID from '%s'", name,
				luks_uuid ? luks_uuid : "");
	_cleanup_free_ char *params = NULL;
	rc = dmcrypt_table_params(t, &params, err);
	if (rc < 0)
		return werr_prefix(err, rc, "%s", name);

	struct dm_line line = {.start = 0, .length = t->length, .type = "crypt", .params = params};
	bool at_create = false;
	rc = create_lines(ctx, name, uuid, &line, 1, read_only, &at_create);
	if (rc == 0)
		return 0;
	if (at_create && rc == -ENOMEM)
		return werr_set(err, rc, "create %s: out of memory", name);
	if (at_create && (rc == -EEXIST || rc == -EBUSY))
		return werr_set(err, -EEXIST, "create %s: a mapping with this name "
				"or UUID %s already exists", name, uuid);
	if (!at_create && (rc == -ENOKEY || rc == -EKEYREVOKED || rc == -EKEYEXPIRED))
		return werr_set(err, rc, "create %s: the key %s is not in this thread's keyrings "
				"(dm-crypt looks it up when the table is loaded)", name, t->key_desc);
	if (!at_create && rc == -EINVAL)
		return werr_set(err, rc, "create %s: the kernel refused the crypt table (key %s "
				"of %u bytes, device %u:%u, %" PRIu64 "+%" PRIu64 " sectors); see "
				"dmesg", name, t->key_desc, t->key_size, major(t->backing),
				minor(t->backing), t->offset, t->length);
	return dm_fail(err, rc, "create", name);
}

int dmcrypt_reload(const struct dmcrypt_ctx *ctx, const char *name, const struct dmcrypt_table *t,
		   struct werr *err)
{
	_cleanup_free_ char *params = NULL;
	int rc = dmcrypt_table_params(t, &params, err);
	if (rc < 0)
		return werr_prefix(err, rc, "%s", name);

	/* A reload keeps the mapping's read-only flag only if we pass it again. */
	_cleanup_dmcrypt_info_ struct dmcrypt_info info = { 0 };
	rc = dmcrypt_query(ctx, name, &info, err);
	if (rc < 0)
		return rc;

	DM_SESSION(ctx);
	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_RELOAD, name);
	if (!dmt || !dm_task_add_target(dmt, 0, t->length, "crypt", params) ||
	    (info.read_only && !dm_task_set_ro(dmt)) || !dm_task_secure_data(dmt))
		return werr_set(err, -ENOMEM, "reload %s: out of memory", name);
	if (!dm_task_run(dmt)) {
		rc = task_errno(dmt);
		if (rc == -ENOKEY || rc == -EKEYREVOKED || rc == -EKEYEXPIRED)
			return werr_set(err, rc, "reload %s: the key %s is not in this thread's "
					"keyrings (dm-crypt looks it up when the table is loaded)",
					name, t->key_desc);
		if (rc == -EINVAL)
			return werr_set(err, rc, "reload %s: the kernel refused the crypt table "
					"(key %s of %u bytes); see dmesg", name, t->key_desc,
					t->key_size);
		return dm_fail(err, rc, "reload", name);
	}
	return 0;
}

int dmcrypt_suspend(const struct dmcrypt_ctx *ctx, const char *name, bool flush, struct werr *err)
{
	DM_SESSION(ctx);
	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_SUSPEND, name);
	if (!dmt || (!flush && (!dm_task_no_flush(dmt) || !dm_task_skip_lockfs(dmt))))
		return werr_set(err, -ENOMEM, "suspend %s: out of memory", name);
	if (!dm_task_run(dmt))
		return dm_fail(err, task_errno(dmt), "suspend", name);
	return 0;
}

int dmcrypt_resume(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err)
{
	DM_SESSION(ctx);
	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_RESUME, name);
	if (!dmt || !dm_task_secure_data(dmt) || !dm_task_set_add_node(dmt, DM_ADD_NODE_ON_RESUME))
		return werr_set(err, -ENOMEM, "resume %s: out of memory", name);
	int rc = run_node_task(ctx, dmt);
	if (rc < 0)
		return dm_fail(err, rc, "resume", name);
	return 0;
}

/* ---- remove ---------------------------------------------------------------- */

/* "mounted at /x", "held by dm-3 dm-4", "open count 2": why remove got EBUSY. */
static void describe_busy(dev_t dev, int32_t open_count, char *out, size_t cap)
{
	size_t used = (size_t)snprintf(out, cap, "open count %d", open_count);
	char path[96];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major(dev), minor(dev));
	DIR *d = opendir(path);
	if (d) {
		const char *sep = "; held by ";
		for (struct dirent *e; (e = readdir(d)) && used < cap;) {
			if (e->d_name[0] == '.')
				continue;
			used += (size_t)snprintf(out + used, cap - used, "%s%s", sep, e->d_name);
			sep = " ";
		}
		closedir(d);
	}

	_cleanup_fclose_ FILE *mi = fopen("/proc/self/mountinfo", "re");
	char want[32], line[4096];
	snprintf(want, sizeof(want), "%u:%u", major(dev), minor(dev));
	while (mi && used < cap && fgets(line, sizeof(line), mi)) {
		/* "36 35 253:0 / /mnt rw,..." */
		char devno[32], mnt[2048];
		if (sscanf(line, "%*s %*s %31s %*s %2047s", devno, mnt) == 2 && !strcmp(devno, want))
			used += (size_t)snprintf(out + used, cap - used, "; mounted at %s", mnt);
	}
}

int dmcrypt_remove(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err)
{
	int rc = 0;
	for (unsigned attempt = 0;; attempt++) {
		DM_SESSION(ctx);
		_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_REMOVE, name);
		if (!dmt)
			return werr_set(err, -ENOMEM, "remove %s: out of memory", name);
		rc = run_node_task(ctx, dmt);
		/* EBUSY right after close is usually a udev probe or a lingering
		 * opener finishing; anything else will not improve by waiting. */
		if (rc != -EBUSY || attempt >= ctx->remove_retries)
			break;
		sleep_ms(ctx->retry_delay_ms);
	}
	if (rc == 0)
		return 0;
	if (rc == -EBUSY) {
		char why[1024] = "";
		_cleanup_dmcrypt_info_ struct dmcrypt_info info = { 0 };
		struct werr ignored;
		if (dmcrypt_query(ctx, name, &info, &ignored) == 0)
			describe_busy(info.dev, info.open_count, why, sizeof(why));
		return werr_set(err, rc, "remove %s: mapping is in use (%s); unmount it or close "
				"its users first", name, why);
	}
	return dm_fail(err, rc, "remove", name);
}

/* ---- query ----------------------------------------------------------------- */

void dmcrypt_info_free(struct dmcrypt_info *info)
{
	if (!info)
		return;
	free(info->table);
	free(info->status);
	free(info->deps);
	info->table = info->status = NULL;
	info->deps = NULL;
	info->n_deps = 0;
}

/* Masks a literal key in crypt params ("cipher KEY iv ...") with zeros, as
 * `dmsetup table` does without --showkeys. Keyring references (":64:logon:..")
 * and "-" (no key) are kept: they are names, not keys. */
static void mask_crypt_key(char *params)
{
	char *key = strchr(params, ' ');
	if (!key)
		return;
	key++;
	if (*key == ':' || (*key == '-' && (key[1] == ' ' || !key[1])))
		return;
	for (; *key && *key != ' '; key++)
		*key = '0';
}

static int append_fmt(char **buf, size_t *len, const char *fmt, ...) _printf_(3, 4);
static int append_fmt(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	char *nb = realloc(*buf, *len + (size_t)n + 1);
	if (!nb)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(nb + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*buf = nb;
	*len += (size_t)n;
	return 0;
}

/* All targets of a TABLE or STATUS task as "start len type params" lines. */
static int collect_targets_x(int type, const char *name, bool inactive, char **out)
{
	_cleanup_dm_task_ struct dm_task *dmt = task_for(type, name);
	if (!dmt || (type == DM_DEVICE_TABLE && !dm_task_secure_data(dmt)) ||
	    (inactive && !dm_task_query_inactive_table(dmt)))
		return -ENOMEM;
	if (!dm_task_run(dmt))
		return task_errno(dmt);
	char *buf = strdup(""), *ttype = NULL, *params = NULL;
	size_t len = 0;
	uint64_t start, length;
	void *next = NULL;
	int rc = buf ? 0 : -ENOMEM;
	do {
		next = dm_get_next_target(dmt, next, &start, &length, &ttype, &params);
		if (!ttype || rc < 0)
			continue;
		if (type == DM_DEVICE_TABLE && !strcmp(ttype, "crypt") && params)
			mask_crypt_key(params); /* in libdevmapper's buffer: no copy of a key */
		rc = append_fmt(&buf, &len, "%s%" PRIu64 " %" PRIu64 " %s%s%s", len ? "\n" : "",
				start, length, ttype, params && *params ? " " : "",
				params ? params : "");
	} while (next);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

static int collect_targets(int type, const char *name, char **out)
{
	return collect_targets_x(type, name, false, out);
}

int dmcrypt_query(const struct dmcrypt_ctx *ctx, const char *name, struct dmcrypt_info *info,
		  struct werr *err)
{
	*info = (struct dmcrypt_info){ 0 };
	DM_SESSION(ctx);

	struct dm_info di;
	{
		_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_INFO, name);
		if (!dmt)
			return werr_set(err, -ENOMEM, "query %s: out of memory", name);
		if (!dm_task_run(dmt))
			return dm_fail(err, task_errno(dmt), "query", name);
		if (!dm_task_get_info(dmt, &di))
			return werr_set(err, -EIO, "query %s: no info from device-mapper", name);
		if (!di.exists)
			return werr_set(err, -ENXIO, "query %s: no such device-mapper mapping", name);
		const char *uuid = dm_task_get_uuid(dmt);
		snprintf(info->name, sizeof(info->name), "%s", name);
		snprintf(info->uuid, sizeof(info->uuid), "%s", uuid ? uuid : "");
		info->dev = makedev(di.major, di.minor);
		info->open_count = di.open_count;
		info->read_only = di.read_only;
		info->suspended = di.suspended;
		info->inactive_table = di.inactive_table;
		info->target_count = di.target_count > 0 ? (unsigned)di.target_count : 0;
	}

	int rc = collect_targets(DM_DEVICE_TABLE, name, &info->table);
	if (rc == 0)
		rc = collect_targets(DM_DEVICE_STATUS, name, &info->status);
	if (rc < 0) {
		dmcrypt_info_free(info);
		return dm_fail(err, rc, "query", name);
	}

	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_DEPS, name);
	struct dm_deps *deps;
	if (!dmt || !dm_task_run(dmt) || !(deps = dm_task_get_deps(dmt))) {
		rc = dmt ? task_errno(dmt) : -ENOMEM;
		dmcrypt_info_free(info);
		return dm_fail(err, rc, "query dependencies of", name);
	}
	if (deps->count) {
		info->deps = calloc(deps->count, sizeof(dev_t));
		if (!info->deps) {
			dmcrypt_info_free(info);
			return werr_set(err, -ENOMEM, "query %s: out of memory", name);
		}
		/* The kernel's huge_encode_dev matches glibc's dev_t encoding. */
		for (uint32_t i = 0; i < deps->count; i++)
			info->deps[i] = (dev_t)deps->device[i];
		info->n_deps = deps->count;
	}
	return 0;
}

/* ---- list ------------------------------------------------------------------ */

void dmcrypt_names_free(char **names)
{
	if (!names)
		return;
	for (char **n = names; *n; n++)
		free(*n);
	free(names);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int dmcrypt_list(const struct dmcrypt_ctx *ctx, const char *uuid_prefix, char ***names_out,
		 struct werr *err)
{
	*names_out = NULL;
	DM_SESSION(ctx);
	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_LIST, NULL);
	if (!dmt)
		return werr_set(err, -ENOMEM, "list mappings: out of memory");
	if (!dm_task_run(dmt))
		return dm_fail(err, task_errno(dmt), "list", "mappings");
	struct dm_names *n = dm_task_get_names(dmt);

	char **names = calloc(1, sizeof(char *));
	size_t count = 0;
	if (!names)
		return werr_set(err, -ENOMEM, "list mappings: out of memory");
	size_t plen = uuid_prefix ? strlen(uuid_prefix) : 0;
	/* An empty list is one entry with dev == 0. */
	for (uint32_t next = n && n->dev ? 1 : 0; next; n = (struct dm_names *)((char *)n + next)) {
		next = n->next;
		_cleanup_dm_task_ struct dm_task *it = task_for(DM_DEVICE_INFO, n->name);
		struct dm_info di;
		if (!it || !dm_task_run(it) || !dm_task_get_info(it, &di) || !di.exists)
			continue; /* removed meanwhile */
		const char *uuid = dm_task_get_uuid(it);
		if (plen && (!uuid || strncmp(uuid, uuid_prefix, plen)))
			continue;
		char **grown = realloc(names, (count + 2) * sizeof(char *));
		if (!grown || !(grown[count] = strdup(n->name))) {
			dmcrypt_names_free(grown ? grown : names);
			return werr_set(err, -ENOMEM, "list mappings: out of memory");
		}
		names = grown;
		names[++count] = NULL;
	}
	qsort(names, count, sizeof(char *), cmp_names);
	*names_out = names;
	return 0;
}

/* ---- tables of several targets (online rekey) ------------------------------ */

static int add_lines(struct dm_task *dmt, const struct dm_line *lines, size_t n)
{
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (lines[i].start != at || !lines[i].length)
			return -EINVAL;
		if (!dm_task_add_target(dmt, lines[i].start, lines[i].length, lines[i].type,
					lines[i].params))
			return -ENOMEM;
		at += lines[i].length;
	}
	return n ? 0 : -EINVAL;
}

int dm_load_lines(const struct dmcrypt_ctx *ctx, const char *name, const struct dm_line *lines,
		  size_t n, struct werr *err)
{
	_cleanup_dmcrypt_info_ struct dmcrypt_info info = { 0 };
	int rc = dmcrypt_query(ctx, name, &info, err);
	if (rc < 0)
		return rc;
	DM_SESSION(ctx);
	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_RELOAD, name);
	if (!dmt || (info.read_only && !dm_task_set_ro(dmt)) || !dm_task_secure_data(dmt))
		return werr_set(err, -ENOMEM, "reload %s: out of memory", name);
	if ((rc = add_lines(dmt, lines, n)) < 0)
		return werr_set(err, rc, "reload %s: bad table", name);
	if (!dm_task_run(dmt)) {
		rc = task_errno(dmt);
		if (rc == -ENOKEY || rc == -EKEYREVOKED || rc == -EKEYEXPIRED)
			return werr_set(err, rc, "reload %s: a key of the new table is not in this "
					"thread's keyrings", name);
		return dm_fail(err, rc, "reload", name);
	}
	return 0;
}

int dm_create_lines(const struct dmcrypt_ctx *ctx, const char *name, const char *dm_uuid,
		    const struct dm_line *lines, size_t n, struct werr *err)
{
	if (!dmcrypt_name_valid(name))
		return werr_set(err, -EINVAL, "'%s' is not a valid mapping name", name ? name : "");
	bool at_create = false;
	int rc = create_lines(ctx, name, dm_uuid, lines, n, false, &at_create);
	if (rc == -ENOMEM && at_create)
		return werr_set(err, rc, "create %s: out of memory", name);
	return rc < 0 ? dm_fail(err, rc, "create", name) : 0;
}

int dm_clear_inactive(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err)
{
	DM_SESSION(ctx);
	_cleanup_dm_task_ struct dm_task *dmt = task_for(DM_DEVICE_CLEAR, name);
	if (!dmt)
		return werr_set(err, -ENOMEM, "clear %s: out of memory", name);
	if (!dm_task_run(dmt))
		return dm_fail(err, task_errno(dmt), "clear the inactive table of", name);
	return 0;
}

int dm_inactive_table(const struct dmcrypt_ctx *ctx, const char *name, char **table,
		      struct werr *err)
{
	DM_SESSION(ctx);
	int rc = collect_targets_x(DM_DEVICE_TABLE, name, true, table);
	return rc < 0 ? dm_fail(err, rc, "query the inactive table of", name) : 0;
}

int dm_suspend_noflush(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err)
{
	return dmcrypt_suspend(ctx, name, false, err);
}
