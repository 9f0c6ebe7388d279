/*
 * dm: dm-crypt mappings through libdevmapper (never a dmsetup/cryptsetup
 * subprocess).
 *
 * It owns: the crypt target table exactly as cryptsetup writes it for a LUKS2
 * segment (so `cryptsetup status` and `dmsetup table` read wrapd mappings like
 * their own), the dm UUID "CRYPT-LUKS2-<uuid without dashes>-<name>",
 * creating (optionally read-only), removing (brief retry on EBUSY, then an
 * error naming the holders), querying (table with keys masked, status, open
 * count, read-only, dependencies), listing mappings by UUID prefix, and
 * reload/suspend/resume for online rekey. It works with udev (sync through
 * cookies) and without it (libdevmapper makes the /dev/mapper nodes itself).
 *
 * Keys: the table only ever names a keyring key (":64:logon:wrapd:<uuid>");
 * the kernel resolves it in the keyrings of the thread that creates or
 * reloads the mapping (see keyring/keyring.h).
 *
 * libdevmapper keeps process-wide settings (udev sync, its log function).
 * Every call here sets them from the dmcrypt_ctx it is given, so behaviour
 * follows the context, not whatever ran before; calls from several threads
 * with different contexts at once are not supported.
 */
#ifndef WRAPD_DM_H
#define WRAPD_DM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

#define DMCRYPT_UUID_PREFIX "CRYPT-LUKS2-"
#define DMCRYPT_NAME_MAX 127          /* DM_NAME_LEN - 1 */
#define DMCRYPT_UUID_MAX 128          /* DM_UUID_LEN - 1 */
#define DMCRYPT_SECTOR 512u           /* dm tables count 512-byte sectors */

/* Target options, in the order cryptsetup writes them. */
enum dmcrypt_flag {
	DMCRYPT_ALLOW_DISCARDS = 1u << 0,
	DMCRYPT_SAME_CPU_CRYPT = 1u << 1,
	DMCRYPT_SUBMIT_FROM_CRYPT_CPUS = 1u << 2,
	DMCRYPT_NO_READ_WORKQUEUE = 1u << 3,     /* Linux >= 5.9 */
	DMCRYPT_NO_WRITE_WORKQUEUE = 1u << 4,    /* Linux >= 5.9 */
};

/* One crypt target covering the whole mapping: a LUKS2 data segment. */
struct dmcrypt_table {
	const char *cipher;        /* "aes-xts-plain64" */
	const char *key_desc;      /* logon key description, "wrapd:<uuid>" */
	unsigned key_size;         /* key bytes: 64 for aes-xts-plain64 with AES-256 */
	uint64_t iv_offset;        /* 512-byte sectors; 0 for a normal volume */
	dev_t backing;             /* the backing block device (maj:min) */
	uint64_t offset;           /* data offset on it, 512-byte sectors */
	uint64_t length;           /* mapping length, 512-byte sectors */
	unsigned sector_size;      /* encryption sector: 512, 1024, 2048 or 4096 */
	unsigned flags;            /* enum dmcrypt_flag */
};

/* Builds the target parameters, e.g.
 * "aes-xts-plain64 :64:logon:wrapd:<uuid> 0 7:0 32768 1 sector_size:4096"
 * (malloc'ed). Validates every field: -EINVAL with a message otherwise. */
int dmcrypt_table_params(const struct dmcrypt_table *t, char **params, struct werr *err) _must_check_;
/* The whole line as `dmsetup table` prints it: "0 <length> crypt <params>". */
int dmcrypt_table_line(const struct dmcrypt_table *t, char **line, struct werr *err) _must_check_;

/* Performance flags for a kernel version: no_read/no_write_workqueue from
 * 5.9 on (about twice the throughput, half the latency), otherwise none. */
unsigned dmcrypt_perf_flags_for(unsigned kmajor, unsigned kminor);
/* The running kernel's major.minor, from uname(2). */
int dmcrypt_kernel_version(unsigned *kmajor, unsigned *kminor);

/* "CRYPT-LUKS2-<uuid, dashes removed>-<name>", into out (>= DMCRYPT_UUID_MAX+1).
 * -EINVAL for a bad name or uuid, -ENAMETOOLONG when it does not fit. */
int dmcrypt_dm_uuid(const char *luks_uuid, const char *name, char *out, size_t cap);
/* The one mapping-name check of wrapd (also for volume-table names): 1-127
 * of [A-Za-z0-9_.+@-], not ".", ".." or starting with '-'; a name dm
 * accepts and that is safe as /dev/mapper/<name>. */
bool dmcrypt_name_valid(const char *name);

/* How to talk to device-mapper. */
struct dmcrypt_ctx {
	bool udev;                 /* sync with udev through cookies */
	const struct wlog *log;    /* libdevmapper's own messages, at debug level; may be NULL */
	unsigned remove_retries;   /* extra tries when remove meets EBUSY */
	unsigned retry_delay_ms;   /* pause between them */
};
/* Fills ctx with defaults: udev when /run/udev/control exists, else
 * libdevmapper creates and removes the /dev/mapper nodes itself. */
void dmcrypt_ctx_init(struct dmcrypt_ctx *ctx, const struct wlog *log);

/* Creates and activates mapping `name` with dm UUID dmcrypt_dm_uuid(luks_uuid,
 * name). The key named in the table must be in the calling thread's keyrings
 * now; once this returns it can be removed. -EEXIST if the name is taken. */
int dmcrypt_create(const struct dmcrypt_ctx *ctx, const char *name, const char *luks_uuid,
		   const struct dmcrypt_table *t, bool read_only, struct werr *err) _must_check_;

/* Removes the mapping. EBUSY is retried ctx->remove_retries times; then the
 * error says who holds it (open count, /sys/block/dm-N/holders). -ENXIO if
 * there is no such mapping. */
int dmcrypt_remove(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err) _must_check_;

/* What the kernel says about a mapping. */
struct dmcrypt_info {
	char name[DMCRYPT_NAME_MAX + 1];
	char uuid[DMCRYPT_UUID_MAX + 1];
	dev_t dev;                 /* the dm device, e.g. 253:0 */
	int32_t open_count;
	bool read_only;
	bool suspended;
	bool inactive_table;       /* a reloaded table waits for resume */
	unsigned target_count;
	char *table;               /* "0 <len> crypt <params>" lines, hex keys masked as zeros */
	char *status;              /* "0 <len> crypt <status>" lines */
	dev_t *deps;               /* devices the mapping sits on */
	size_t n_deps;
};
/* -ENXIO if there is no such mapping. Free with dmcrypt_info_free. */
int dmcrypt_query(const struct dmcrypt_ctx *ctx, const char *name, struct dmcrypt_info *info,
		  struct werr *err) _must_check_;
void dmcrypt_info_free(struct dmcrypt_info *info);
static inline void dmcrypt_info_freep(struct dmcrypt_info *i) { dmcrypt_info_free(i); }
#define _cleanup_dmcrypt_info_ _cleanup_(dmcrypt_info_freep)

/* Names of all mappings whose dm UUID starts with uuid_prefix (e.g.
 * DMCRYPT_UUID_PREFIX, or "" for all), sorted, NULL-terminated, malloc'ed;
 * free with dmcrypt_names_free. */
int dmcrypt_list(const struct dmcrypt_ctx *ctx, const char *uuid_prefix, char ***names,
		 struct werr *err) _must_check_;
void dmcrypt_names_free(char **names);

/* Online table change (rekey): reload loads t as the inactive table (the key
 * it names must be in the thread's keyrings again), suspend quiesces I/O
 * (flushing, unless nothing may be written), resume swaps in the inactive
 * table and restarts I/O. */
int dmcrypt_reload(const struct dmcrypt_ctx *ctx, const char *name, const struct dmcrypt_table *t,
		   struct werr *err) _must_check_;
int dmcrypt_suspend(const struct dmcrypt_ctx *ctx, const char *name, bool flush,
		    struct werr *err) _must_check_;
int dmcrypt_resume(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err) _must_check_;

/* ---- tables of several targets (online rekey) ---------------- */

/* One line of a table: "start length type params" (512-byte sectors). */
struct dm_line {
	uint64_t start, length;
	const char *type;          /* "crypt", "linear" */
	char *params;              /* owned by the caller */
};
/* Loads lines[0..n) as the inactive table of `name` (keys named by crypt
 * lines must be in the thread's keyrings now; the mapping's read-only flag
 * is kept). The lines must tile [0, total) without gaps. */
int dm_load_lines(const struct dmcrypt_ctx *ctx, const char *name, const struct dm_line *lines,
		  size_t n, struct werr *err) _must_check_;
/* Creates and resumes a device with the full dm UUID `dm_uuid` (not a
 * CRYPT-LUKS2 one: a helper device, never listed as a volume). */
int dm_create_lines(const struct dmcrypt_ctx *ctx, const char *name, const char *dm_uuid,
		    const struct dm_line *lines, size_t n, struct werr *err) _must_check_;
/* Drops the inactive table of `name` (none: success). */
int dm_clear_inactive(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err) _must_check_;
/* The inactive table as text ("" when none), keys masked; malloc'ed. */
int dm_inactive_table(const struct dmcrypt_ctx *ctx, const char *name, char **table,
		      struct werr *err) _must_check_;
/* Suspend without flushing and without freezing the filesystem on it
 * (in-flight I/O still completes; new I/O queues until resume). */
int dm_suspend_noflush(const struct dmcrypt_ctx *ctx, const char *name, struct werr *err) _must_check_;

#endif
