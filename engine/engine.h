/*
 * engine: the in-place conversion engine (encrypt, rekey, decrypt, resume).
 *
 * It owns: the io_uring data pipeline (reads ahead, AES-256-XTS on worker
 * threads, writes behind), the pluggable I/O backends (io_uring, synchronous,
 * and a power-loss simulator for tests), the crash-safety protocol and its
 * on-disk journal/park areas, filesystem size probing, and the conversion
 * state kept in the LUKS2 header through format/.
 *
 * This header is the API callers use (conv_run, conv_status and their
 * types). The pipeline, the I/O backends, the cipher, the durable records
 * and the test hooks are in engine/internal.h.
 *
 * ---------------------------------------------------------------------------
 * THE INVARIANT (see engine/README.md for the long form)
 *
 *   At every instant, for every sector of user data, the durable state of the
 *   device plus the durable header (the highest valid copy, or the park
 *   descriptor when no valid header copy exists) names exactly one place
 *   where that sector's current content can be found, and how to interpret it
 *   (old form, new form, or "old or new: tell by the journal hash").
 *
 * The protocol keeps it by three rules:
 *  1. Nothing is overwritten until the copy the durable checkpoint relies on
 *     is durable (data fsync before every header commit that advances
 *     "done"; header commit + fsync before any write of the next hotzone).
 *  2. In-place hotzones (detached encrypt, rekey, detached decrypt) journal a
 *     64-bit hash of every 512-byte sub-sector's old content, durably, before
 *     the header names the hotzone; on resume each sub-sector that still
 *     hashes to its old value is old, anything else was written and is new.
 *     512-byte writes are atomic (the power-loss model), XTS blocks are
 *     independent, so even a torn 4096-byte sector is rebuilt exactly.
 *  3. Shifting hotzones (attached encrypt moves data up by the data offset,
 *     attached decrypt moves it back down) are never larger than the shift,
 *     so a hotzone's destination only covers sources that are already done
 *     and durable: redoing the hotzone from its intact source is always safe.
 *     The first MiB of a device being encrypted (which the header needs) is
 *     parked in the free tail with a self-checking descriptor before the
 *     header is written; decrypt parks it there before the header is erased.
 * ---------------------------------------------------------------------------
 *
 * VKs travel only in struct secbuf; the engine copies them into OpenSSL
 * contexts and nowhere else, and never logs them.
 */
#ifndef WRAPD_ENGINE_H
#define WRAPD_ENGINE_H

#include <signal.h>

#include "common/common.h"

struct wrapd_token;
struct conv_test_hooks; /* engine/internal.h: tests only */

/* ---- geometry of an attached (shifted) conversion ------------------------ */
#define ENGINE_SHIFT (16ull * 1024 * 1024)    /* data offset of a wrapd volume */
#define ENGINE_PARK_SIZE (1024ull * 1024)      /* park region in the tail */
#define ENGINE_PARK_HDR_OFF (32ull * 1024)     /* header image inside the park */
#define ENGINE_PARK_DATA_OFF (64ull * 1024)    /* parked data inside the park */
#define ENGINE_PARK_DATA (ENGINE_PARK_SIZE - ENGINE_PARK_DATA_OFF) /* 960 KiB */
/* Free tail an attached encrypt needs: the shift plus the park region. */
#define ENGINE_TAIL_NEEDED (ENGINE_SHIFT + ENGINE_PARK_SIZE)
/* The journal lives in the header's keyslots area at this offset. */
#define ENGINE_JOURNAL_OFF (1024ull * 1024)
/* A detached header file has this size (header + keyslots area for the journal). */
#define ENGINE_DETACHED_HDR_SIZE (16ull * 1024 * 1024)
/* Online rekey: the held zone's size (conv_online.zone_size) is a power of
 * two in [CONV_ZONE_MIN, CONV_ZONE_MAX]; CONV_ZONE_DEFAULT for a new rekey. */
#define CONV_ZONE_MIN (256ull * 1024)
#define CONV_ZONE_MAX (64ull * 1024 * 1024)
#define CONV_ZONE_DEFAULT (4ull * 1024 * 1024)  /* engine/NOTES.md: the figures */

/* ---- conversions ------------------------------------------------------------ */

enum conv_op { CONV_ENCRYPT = 0, CONV_REKEY, CONV_DECRYPT, CONV_RESUME };
const char *conv_op_name(enum conv_op op);

/*
 * Where keys come from. The CLI implements this with Vault; tests with keys
 * they hold in memory. new_key makes a fresh VK for the volume `uuid` and
 * fills tok (the wrapped form to store); unwrap gives the VK of a token.
 */
struct conv_keyprov {
	int (*new_key)(void *arg, const char *uuid, struct secbuf *vk, struct wrapd_token *tok,
		       struct werr *err);
	int (*unwrap)(void *arg, const struct wrapd_token *tok, struct secbuf *vk,
		      struct werr *err);
	void *arg;
};

struct conv_progress {
	enum conv_op op;            /* the operation that runs (never RESUME) */
	uint64_t done, total;       /* bytes */
};

/*
 * Online rekey: the live mapping, as the engine sees it. volume/ implements
 * it on dm/ and keyring/ (volume/online.c); the crash tests simulate it.
 * The user's mapping keeps its name; its table is
 *   [0,done) new key | [za,zb) through the zone device | [zb,size) old key
 * and the zone device is a crypt target over the whole data area whose key
 * matches what the zone holds: the old key while the zone is held (I/O
 * queued) and converted, the new key once it is released converted.
 * Positions are data positions in bytes.
 */
struct conv_online {
	/* Once, before anything else: both keys (borrowed for the run: the
	 * driver puts them into the keyring around each table load) and the
	 * digest ids that name them. Creates the zone device when missing. */
	int (*begin)(void *arg, const struct secbuf *old_vk, const struct secbuf *new_vk,
		     unsigned old_digest, unsigned new_digest, struct werr *err);
	/* What a dead run left in the kernel, made consistent where that needs
	 * no key: a suspended mapping is resumed on its previous table. When
	 * a zone is still held and its release depends on the data (*held),
	 * [*za,*zb) is that zone: the engine converts it (or finds it
	 * untouched) and calls release. */
	int (*inspect)(void *arg, uint64_t *za, uint64_t *zb, bool *held, struct werr *err);
	/* Moves the zone to [za,zb) (the previous one released) and holds it. */
	int (*hold)(void *arg, uint64_t za, uint64_t zb, struct werr *err);
	/* Lets the held I/O through: on the new key when converted, else on
	 * the old key (the zone was not written). */
	int (*release)(void *arg, bool converted, struct werr *err);
	/* Done: one crypt target with the new key; the zone device removed. */
	int (*finish)(void *arg, struct werr *err);
	void *arg;
	uint64_t map_size;          /* bytes the live mapping covers: must be the data size */
	uint64_t max_rate;          /* bytes per second over the whole run; 0: no limit */
	/* Bytes per held zone (volume/ takes a power of two from CONV_ZONE_MIN
	 * to CONV_ZONE_MAX; the engine rounds down to the chunk and refuses a
	 * size whose journal does not fit the header's keyslots area).
	 * 0: what the interrupted run recorded (resume), else conv_params'
	 * hotzone or CONV_ZONE_DEFAULT. A resume may change it: the journal's
	 * slots move with the zone size, so the new size is committed in a
	 * state that names no zone before a zone is journaled with it. */
	uint64_t zone_size;
	bool no_guardian;           /* tests: no guardian process */
};

struct conv_params {
	const char *device;
	const char *header;          /* detached header file, or NULL */
	enum conv_op op;
	uint32_t sector_size;        /* encrypt: 0 = 4096, or 512 when the fs needs it */
	bool tail_is_free;           /* encrypt without a recognised filesystem */
	const struct conv_keyprov *keys;
	/* Online rekey (or resume of one) of a mapped volume; NULL: offline. */
	const struct conv_online *online;
	/* tuning (0 = defaults) */
	size_t chunk, pool;
	uint64_t hotzone;
	unsigned workers;
	bool cipher_off;             /* bench only: I/O without the cipher */
	/* I/O backend choice, power-loss simulation, op hooks: tests only
	 * (struct in engine/internal.h); NULL for io_uring and O_DIRECT. */
	const struct conv_test_hooks *test;
	/* progress and interruption */
	void (*progress)(void *arg, const struct conv_progress *p);
	void *progress_arg;
	volatile sig_atomic_t *stop;
	const struct wlog *log;
};

struct conv_result {
	enum conv_op op;             /* what ran (encrypt/rekey/decrypt) */
	bool resumed;                /* continued an interrupted conversion */
	bool interrupted;            /* stopped at a checkpoint (-EINTR) */
	bool power_lost;             /* simulator only */
	uint64_t bytes;              /* converted in this run */
	double seconds;
	/* online: zones held in this run, the longest and the mean time one
	 * was held (its I/O waited), and the zone size */
	uint64_t zones;
	double hold_max_s, hold_mean_s;
	uint64_t zone_size;
	char uuid[40];
};

/*
 * Runs (or resumes) a conversion. Refusals leave the device unchanged and
 * return a negative errno with a message. -EINTR: stopped cleanly at a
 * checkpoint; the message says how to resume.
 */
int conv_run(const struct conv_params *p, struct conv_result *res, struct werr *err);

/*
 * Reads what is on a device without changing anything: whether a conversion
 * is in progress and which. *op is CONV_RESUME when none is.
 */
int conv_status(const char *device, const char *header, enum conv_op *op, struct werr *err);

struct luks2_device;
/*
 * Opening a volume in the middle of a rekey (volume_open): with the device
 * opened for writing and locked exclusively by the caller, and both keys
 * (checked here against their digests), finishes the hotzone a crash may
 * have left half-written (from its journal) and commits it. The boundary,
 * *done: [0,done) is under the new key, [done,size) under the old.
 * old_digest and new_digest name the keys. -EOPNOTSUPP when the header holds
 * no rekey in progress.
 */
int conv_rekey_prepare_open(struct luks2_device *dv, const struct secbuf *old_vk,
			    const struct secbuf *new_vk, uint64_t *done, unsigned *old_digest,
			    unsigned *new_digest, struct werr *err);
/* The new key's token of a rekey in progress (for the caller to unwrap). */
struct wrapd_token;
int conv_rekey_new_token(const struct luks2_device *dv, struct wrapd_token *tok, struct werr *err);

#endif
