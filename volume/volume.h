/*
 * volume: the orchestration that turns a formatted wrapd device into a
 * /dev/mapper/NAME dm-crypt mapping and back, and manages it afterwards.
 *
 * It owns: format (refusals, Vault datakey, header write), open (header validation -> Vault decrypt with the token's context
 * -> digest check -> logon key -> dm-crypt mapping referencing the key ->
 * key unlinked -> VK wiped; every failure path leaves no mapping, no loop
 * device we created and no key), batched open of many volumes with one Vault
 * decrypt per Transit key, close, status (from dm and the headers, without
 * Vault) and the status/inspect JSON documents, rewrap, crypto-erase, doctor; loop devices for volumes in regular
 * files; the host volume table (/etc/wrapd/volumes).
 *
 * It orchestrates format/ (headers), vault/ (Transit), keyring/ and dm/; it
 * holds no global state: everything goes through struct volume_ctx.
 */
#ifndef WRAPD_VOLUME_H
#define WRAPD_VOLUME_H

#include <dirent.h>
#include <jansson.h>
#include <sys/types.h>

#include "common/common.h"
#include "common/config.h"
#include "engine/engine.h"

struct vault_client;
struct vault_config;
struct luks2_hdr;

#define VOLUME_TABLE_DEFAULT "/etc/wrapd/volumes"
#define VOLUME_NAME_MAX 127          /* dm names are < 128 bytes */
#define VOLUME_DM_UUID_PREFIX "CRYPT-LUKS2-"

/* Open flags (also the table's options). */
enum {
	VOLUME_READ_ONLY = 1u << 0,
	VOLUME_ALLOW_DISCARDS = 1u << 1,
	VOLUME_NO_WORKQUEUE = 1u << 2,   /* force no_read/no_write_workqueue */
	VOLUME_WORKQUEUE = 1u << 3,      /* force the kernel's workqueues (no perf flags) */
};

static inline void closedirp(DIR **d) { if (*d) closedir(*d); }

/* ---- the host volume table ---------------------------------------------- */

struct volume_entry {
	char *name;                /* dm name */
	char *device;              /* absolute path, or "UUID=<lowercase uuid>" */
	char *header;              /* detached header file, or NULL */
	unsigned flags;            /* VOLUME_* */
	bool noauto;               /* skipped by --all */
	unsigned line;             /* line number in the file */
};
struct volume_table {
	struct volume_entry *v;
	size_t n;
};
/* Strict parser: `NAME DEVICE [OPTIONS]` per line, '#' comments, options
 * comma-separated (read-only|ro, discard|allow-discards, no-workqueue,
 * workqueue, header=PATH, noauto; "-" or "defaults" for none). Any error
 * names src:line. */
int volume_table_parse(const char *text, size_t len, const char *src, struct volume_table *out,
		       struct werr *err);
/* path NULL = VOLUME_TABLE_DEFAULT. Refuses symlinks and world-writable files. */
int volume_table_load(const char *path, struct volume_table *out, struct werr *err);
void volume_table_free(struct volume_table *t);

/* The volume keys of wrapd.conf: volume_table (default VOLUME_TABLE_DEFAULT,
 * used when the command line names no table). */
struct volume_settings {
	char *table;               /* NULL = VOLUME_TABLE_DEFAULT */
};
struct config_section volume_config_section(struct volume_settings *s);
void volume_settings_free(struct volume_settings *s);
const struct volume_entry *volume_table_find(const struct volume_table *t, const char *name);

/* ---- loop devices -------------------------------------------------------- */

/* Attaches a fresh loop device (LOOP_CONFIGURE, or SET_FD + SET_STATUS64 on
 * old kernels) with autoclear. *loop_fd keeps it alive until released. */
int loop_attach(const char *path, bool read_only, int *loop_fd, char **loopdev,
		struct werr *err);
/* The same on an fd already open on the file (O_RDWR unless read_only);
 * path only names it in lo_file_name and messages. */
int loop_attach_fd(int fd, const char *path, bool read_only, int *loop_fd, char **loopdev,
		   struct werr *err);
/* Closes our fd; with detach, LOOP_CLR_FD first so an unused loop goes away
 * now (a loop held by a mapping stays, and autoclears with it). */
void loop_release(int *loop_fd, bool detach);
static inline void loop_release_detach(int *loop_fd) { loop_release(loop_fd, true); }
/* The first bound loop device backed by regular file `path` at offset 0;
 * -ENOENT when none. (Both are views of blockdev's one loop scan,
 * bdev_loops_backed_by.) */
int loop_find(const char *path, char **loopdev, struct werr *err);
/* The same at any offset: for "is this file in use at all" (erase). */
int loop_find_any(const char *path, char **loopdev, struct werr *err);
/* Backing file identity of an open loop device. */
int loop_backing(int loopfd, dev_t *dev, ino_t *ino, uint64_t *offset);
/* "/dev/<DEVNAME>" of a block device number, from sysfs (bdev_devname). */
int volume_devname(dev_t dev, char **out);

/* ---- orchestration --------------------------------------------------------- */

struct volume_ctx {
	const struct wlog *log;
	/* Vault: either a client made by the caller, or a config from which
	 * volume_* makes clients on demand (one per Transit mount/key found in
	 * the tokens). Both may be NULL for commands that need no Vault. */
	struct vault_client *vc;
	const struct vault_config *vcfg;
	bool vault_key_explicit;   /* --vault-mount/--vault-key given: do not follow the token */
	int udev;                  /* 1 udev, 0 no udev, -1 detect */
};

struct volume_open_req {
	/* in */
	const char *device;        /* path or UUID=<uuid> */
	const char *name;          /* dm name */
	const char *header;        /* detached header file, or NULL */
	unsigned flags;            /* VOLUME_* */
	/* out */
	int rc;
	bool already_open;         /* idempotent success */
	bool vault_error;          /* rc came from asking Vault (down, sealed, refused):
				    * a later retry may succeed */
	char msg[WERR_MSG_MAX];    /* the error line when rc < 0 */
};

/* Opens one volume. */
int volume_open(const struct volume_ctx *ctx, struct volume_open_req *req, struct werr *err);
/*
 * Opens many volumes with one batched Vault decrypt per Transit key.
 * Each request gets its own rc/msg; returns 0 when all succeeded, else the
 * first failure's rc (err says how many failed).
 */
int volume_open_many(const struct volume_ctx *ctx, struct volume_open_req *reqs, size_t n,
		     struct werr *err);

/* Closes mapping `name`. Refuses a mapping without our dm UUID prefix unless
 * force. deferred: remove when the last user closes it. */
int volume_close(const struct volume_ctx *ctx, const char *name, bool deferred, bool force,
		 struct werr *err);

struct volume_status {
	char name[128];
	char dm_uuid[160];
	char luks_uuid[37];
	char backing[256];         /* /dev/... of the data device (loop or disk) */
	char backing_file[4096];   /* for a loop: its file, else "" */
	char cipher[64];
	char key_ref[160];         /* ":64:logon:wrapd:<uuid>" */
	char flags[256];           /* dm-crypt options, space-separated */
	uint64_t size_bytes;       /* mapping size */
	uint64_t offset_sectors;
	uint32_t sector_size;
	bool read_only;
	bool suspended;
	int open_count;
	char holders[512];         /* space-separated */
	int key_version;           /* from the header's token; -1 unknown */
	char header_note[512];     /* why key_version is unknown, else "" */
	/* An online rekey (the only conversion a mapped volume can be in):
	 * the table is split [0,a) new key | [a,b) zone | [b,size) old key.
	 * size_bytes is then the whole mapping's (all targets), key_ref the
	 * old key's (the new key's when the old one is only in the zone). */
	unsigned targets;          /* dm targets: 1, or 2-3 while split */
	bool split;
	char key_ref_new[160];     /* split: the new key's reference, else "" */
	uint64_t table_new_bytes;  /* split: a, what the live table serves under the new key */
	uint64_t zone_start, zone_bytes; /* split: the zone [a,b) (0 bytes when none) */
	/* The header's conversion state (authoritative for progress: it is
	 * durable, a resume or an open after a crash continues from it; the
	 * live table may be one zone ahead of it). */
	char conversion[16];       /* "rekey" (or another op's name), "" when none */
	uint64_t conv_done, conv_total; /* bytes done of total at the last checkpoint */
};
/* Fills an array (malloc'ed) with every wrapd mapping; name filters to one
 * (-ENOENT when it is not a mapping). No Vault needed. */
int volume_status_list(const struct volume_ctx *ctx, const char *name,
		       struct volume_status **out, size_t *n, struct werr *err);
/* The status documents (`wrapctl status --json`'s kernel view): one object
 * per mapping, and the array of them. NULL when out of memory. */
json_t *volume_status_entry_json(const struct volume_status *s);
/* A rekey in progress on s: bytes done of total and where that comes from
 * ("header": its checkpoint, authoritative; "table": the split table, when
 * the header cannot be read). false when none. */
bool volume_status_rekey(const struct volume_status *s, uint64_t *done, uint64_t *total,
			 const char **source);
/* Its "rekey" object (null when none), as in the status document. */
json_t *volume_status_rekey_json(const struct volume_status *s);
json_t *volume_status_json(const struct volume_status *st, size_t n);

/* The inspect document (`wrapctl inspect --json`, a contract for scripts):
 * the header's fields, segments, keyslots, tokens, digests, the wrapd token
 * and conversion state, and whether it can be opened/written, with every
 * header string reduced to printable ASCII. On a header that cannot be read,
 * returns the negative errno with err set AND *doc set to
 * {"device", "valid": false, "error", "copies"?}; the caller owns *doc. */
int volume_inspect(const struct volume_ctx *ctx, const char *dev, json_t **doc, struct werr *err);
/* The same document for a header already read. */
json_t *volume_inspect_header(const char *dev, const struct luks2_hdr *h);

/* Rewraps the VK of each device under the Transit key's latest version
 * (one batched request per key) and writes the token. Safe while open.
 * Per-device results in rcs[] (may be NULL). */
struct volume_rewrap_result {
	int rc;
	unsigned old_version, new_version;
	char msg[WERR_MSG_MAX];
};
int volume_rewrap(const struct volume_ctx *ctx, const char *const *devices,
		  const char *const *headers, size_t n, struct volume_rewrap_result *res,
		  struct werr *err);

struct volume_erase_report {
	bool token_removed, digest_destroyed;
	unsigned copies_written;
	unsigned wrapped_keys;     /* wrapped VKs destroyed: the token's, a rekey's new one */
	unsigned digests;          /* VK digests destroyed */
	char conversion[64];       /* the conversion found in progress ("" when none) */
	uint64_t overwritten;      /* bytes overwritten with zeros (regions that may hold plaintext) */
	double overwrite_seconds;
	char overwrite_what[512];  /* the regions, one clause each ("" when none) */
	char data_action[256];     /* "discarded 64 MiB (BLKDISCARD)", "punched holes ...", ... */
};
struct volume_erase_opts {
	bool no_discard;           /* leave the data area in place (ciphertext without a key) */
	/* Called once the keys are destroyed (both header copies written) and
	 * before a long overwrite starts, with one line saying what comes. */
	void (*notice)(void *arg, const char *line);
	void *notice_arg;
};
/*
 * Crypto-erase. Refuses while open. Keys first: every wrapped VK (the token,
 * a rekey's new one in the conversion state) and every digest are destroyed
 * in both header copies. Then, when a conversion was in progress, every
 * region that may hold plaintext or the conversion journal is overwritten
 * with zeros (recorded in the header first, so rerunning an interrupted
 * erase finishes it); last, the data area is discarded unless no_discard.
 * opts may be NULL.
 */
int volume_erase_opts(const struct volume_ctx *ctx, const char *device, const char *header,
		      const struct volume_erase_opts *opts, struct volume_erase_report *rep,
		      struct werr *err);
int volume_erase(const struct volume_ctx *ctx, const char *device, const char *header,
		 struct volume_erase_report *rep, struct werr *err);

/* Doctor: one line per check. */
enum volume_check_state { CHECK_OK = 0, CHECK_WARN, CHECK_FAIL, CHECK_SKIP };
struct volume_check {
	const char *name;
	enum volume_check_state state;
	char detail[1024];
	char hint[256];
};
/* Fills up to cap checks; returns the number filled, or < 0. */
int volume_doctor(const struct volume_ctx *ctx, struct volume_check *checks, size_t cap);
const char *volume_check_state_str(enum volume_check_state s);

/* ---- Vault settings ------------------------------------------------------------ */

/* What a caller may put on top of the config file and the VAULT_* environment
 * (wrapctl's --vault-addr, --vault-mount, --vault-key). NULL: not overridden. */
struct volume_vault_opts {
	const char *addr, *mount, *key;
};
/* The one place the overrides are applied, on a loaded config: each is set
 * with vault_config_set's validation (as the config file's value would be).
 * On failure err names the option and the caller still owns (frees) cfg. */
int volume_vault_apply(struct vault_config *cfg, const struct volume_vault_opts *o,
		       struct werr *err);
/* Whether the overrides name a Transit mount or key, so that volume_* use
 * them instead of the one each token names (volume_ctx.vault_key_explicit). */
bool volume_vault_opts_key_explicit(const struct volume_vault_opts *o);

/* ---- format --------------------------------------------------------------------- */

struct volume_format_req {
	const char *device;        /* block device or image file */
	const char *name;          /* recorded in the token as "volume_name", or NULL */
	const char *label;         /* LUKS2 label (at most 47 bytes), or NULL */
	uint32_t sector_size;      /* 0: 4096; else 512, 1024, 2048 or 4096 */
	uint64_t data_offset;      /* 0: 16 MiB; a multiple of 4096 and of sector_size */
	bool force;                /* overwrite existing signatures (filesystem, LUKS, ...) */
};
struct volume_format_result {
	char uuid[37];
	char vault_mount[129], vault_key[129];
	unsigned key_version;
};
/*
 * Writes a new wrapd header. Refuses (device unchanged, no Vault request) a
 * bad request, a device that is in use, too small, or whose logical sector
 * size exceeds sector_size, and one with existing signatures unless force.
 * The VK is Vault's datakey for ctx->vcfg's Transit key (ctx->vc, or a
 * client made from ctx->vcfg), bound to the new UUID by the context; it is
 * never returned. The header is read back and checked against the VK.
 */
int volume_format(const struct volume_ctx *ctx, const struct volume_format_req *req,
		  struct volume_format_result *res, struct werr *err);
/* Names every signature libblkid finds on fd ("ext4", "gpt", ...), or ""
 * when none: format's refusal, and the Kubernetes mode's "is it blank?".
 * -EIO when probing itself failed. */
int volume_probe_signatures(int fd, char *names, size_t n);

/* ---- header backup and restore ------------------------------------------------- */

struct volume_header_info {
	char uuid[41];             /* of the header saved or restored */
	uint64_t bytes;            /* size of the header area */
};
/* Saves the header area (both copies and the keyslots area, as cryptsetup's
 * luksHeaderBackup) to a new file (0600; an existing file is refused). */
int volume_header_backup(const struct volume_ctx *ctx, const char *device, const char *file,
			 struct volume_header_info *info, struct werr *err);
/* Validates the backup and writes it back. Without force it refuses a
 * device whose header is missing, has another UUID or data offset, or has
 * an operation of another tool in progress; a backup older than the header
 * (sequence id going backwards, e.g. a stale conversion checkpoint); and a
 * backup without the wrapd conversion the device has in progress. */
int volume_header_restore(const struct volume_ctx *ctx, const char *device, const char *file,
			  bool force, struct volume_header_info *info, struct werr *err);

/* ---- conversions (engine/) with keys from Vault ---------------------------------- */

struct volume_convert_req {
	const char *device;
	const char *header;        /* detached header file, or NULL */
	enum conv_op op;           /* volume_convert only; the others set it */
	uint32_t sector_size;      /* encrypt: 0 = 4096 (or 512 when the fs needs it) */
	bool tail_is_free;         /* encrypt without a recognised filesystem */
	void (*progress)(void *arg, const struct conv_progress *p);
	void *progress_arg;
	volatile sig_atomic_t *stop; /* set (by a signal handler) to stop at a checkpoint */
	/* rekey/resume of a volume whose wrapd mapping is open (online): at
	 * most this many bytes per second (0: no limit). */
	uint64_t max_rate;
	/* rekey/resume online: bytes per held zone, a power of two from
	 * CONV_ZONE_MIN to CONV_ZONE_MAX (engine.h); 0: the default (a new
	 * rekey) or the interrupted run's size (resume). Refused (-EINVAL)
	 * outside that range and when the run would be offline. */
	uint64_t zone_size;
	bool online;               /* out: it ran online */
};
/*
 * Runs conv_run with a key provider on Vault. rekey and resume of a volume
 * whose wrapd mapping is open run online (the mapping stays in use, its table
 * split between the keys; engine/online.c, volume/online.c); a mapping of
 * the device that is not wrapd's is refused. Otherwise: a new VK is the datakey of
 * ctx->vcfg's Transit key (ctx->vc, or a client made when first needed); a
 * token's VK is unwrapped with the token's mount/key unless
 * ctx->vault_key_explicit. Returns as conv_run (-EINTR: stopped at a
 * checkpoint, the message says how to resume).
 */
int volume_convert(const struct volume_ctx *ctx, struct volume_convert_req *req,
		   struct conv_result *res, struct werr *err);
int volume_encrypt(const struct volume_ctx *ctx, const struct volume_convert_req *req,
		   struct conv_result *res, struct werr *err);
int volume_rekey(const struct volume_ctx *ctx, const struct volume_convert_req *req,
		 struct conv_result *res, struct werr *err);
int volume_decrypt(const struct volume_ctx *ctx, const struct volume_convert_req *req,
		   struct conv_result *res, struct werr *err);
int volume_resume(const struct volume_ctx *ctx, const struct volume_convert_req *req,
		  struct conv_result *res, struct werr *err);

/* ---- helpers shared with the CLI ---------------------------------------------- */

/* Whether the running kernel has device-mapper (/proc/misc, /sys/module). */
bool volume_dm_present(void);
/* Kernel version as major*65536 + minor*256 + patch, from uname. */
int volume_kernel_version(unsigned *ver);
/* Resolves "UUID=<uuid>" through libblkid; a path is copied. */
int volume_resolve_device(const char *spec, char **path, struct werr *err);

#endif
