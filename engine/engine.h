/*
 * engine: the in-place conversion engine (encrypt, rekey, decrypt, resume).
 *
 * It owns: the io_uring data pipeline (reads ahead, AES-256-XTS on worker
 * threads, writes behind), the pluggable I/O backends (io_uring, synchronous,
 * and a power-loss simulator for tests), the crash-safety protocol and its
 * on-disk journal/park areas, filesystem size probing, and the conversion
 * state kept in the LUKS2 header through format/.
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
#include <sys/uio.h>

#include "common/common.h"

struct luks2_hdr;
struct wrapd_token;

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

/* ---- the cipher ------------------------------------------------------------ */

enum engine_xform {
	ENGINE_XF_ENCRYPT = 0, /* plain -> new key */
	ENGINE_XF_REKEY,       /* old key -> new key */
	ENGINE_XF_DECRYPT,     /* old key -> plain */
	ENGINE_XF_COPY,        /* cipher off: I/O only (bench) */
};

/* One direction-capable AES-256-XTS key (two EVP contexts). Per thread. */
struct xts_key {
	void *enc, *dec;      /* EVP_CIPHER_CTX* */
};
/* Refuses keys that are not 64 bytes (-EINVAL) and, when for_encrypt, keys
 * whose halves are equal (OpenSSL refuses XTS encryption with them). */
int xts_key_init(struct xts_key *k, const struct secbuf *vk, bool for_encrypt);
void xts_key_free(struct xts_key *k);
/* Encrypts or decrypts buf in place, sector by sector; the IV of the first
 * sector is iv512 (512-byte sector number relative to the data segment),
 * and advances by sector_size/512 per sector, as dm-crypt does. */
int xts_crypt(struct xts_key *k, bool enc, uint8_t *buf, size_t len, uint32_t sector_size,
	      uint64_t iv512);
/* Key check without a context. */
bool xts_key_halves_equal(const struct secbuf *vk);

/* 64-bit hash of one 512-byte sub-sector (journal; not cryptographic). */
uint64_t engine_hash512(const uint8_t *p, uint64_t seed);

/* ---- I/O backends ---------------------------------------------------------- */

struct engine_io_cqe {
	uint64_t tag;
	int res;              /* bytes or negative errno */
};

struct engine_io;
struct engine_io_ops {
	/* Buffers the pipeline will use (registered where the backend can). */
	int (*bufs_register)(struct engine_io *io, const struct iovec *iov, unsigned n);
	void (*bufs_unregister)(struct engine_io *io);
	/* Queue an async read/write of file index `file`; buf_idx is the
	 * registered buffer the memory lies in. Completions come via wait. */
	int (*read)(struct engine_io *io, unsigned file, unsigned buf_idx, void *p, size_t len,
		    uint64_t off, uint64_t tag);
	int (*write)(struct engine_io *io, unsigned file, unsigned buf_idx, const void *p,
		     size_t len, uint64_t off, uint64_t tag);
	/* Submits queued ops and returns completions. When none is ready and
	 * `block` is set, blocks until one is, or until io->evfd is signalled
	 * (then *n may be 0). */
	int (*wait)(struct engine_io *io, bool block, struct engine_io_cqe *cqes, unsigned max,
		    unsigned *n);
	/* Synchronous I/O for headers, journal and park (aligned buffers). */
	int (*pread)(struct engine_io *io, unsigned file, void *p, size_t len, uint64_t off);
	int (*pwrite)(struct engine_io *io, unsigned file, const void *p, size_t len, uint64_t off);
	/* Durability barrier for one file: every completed write before it is durable. */
	int (*fsync)(struct engine_io *io, unsigned file);
	void (*free)(struct engine_io *io);
};

/* Test hook: called before every write and fsync the backend performs (op
 * counts from 1). A SIGKILL test raises SIGKILL from it at op N. */
typedef void (*engine_op_hook)(void *arg, uint64_t op);

struct engine_io {
	const struct engine_io_ops *ops;
	int fds[2];           /* 0: data device, 1: header (may equal fds[0]) */
	int evfd;             /* eventfd the crypto workers signal; owned by the backend */
	uint64_t ops_count;
	engine_op_hook hook;
	void *hook_arg;
	bool dead;            /* simulator: power was lost */
};

/* io_uring: O_DIRECT-friendly, registered files and buffers, setup flags
 * COOP_TASKRUN/SINGLE_ISSUER/DEFER_TASKRUN tried at run time. */
int engine_io_uring_new(const int fds[2], unsigned depth, struct engine_io **out,
			struct werr *err);
/* pread/pwrite, completions delivered immediately. */
int engine_io_sync_new(const int fds[2], struct engine_io **out, struct werr *err);
/*
 * Power-loss simulator (tests): a synchronous backend that remembers every
 * file's content as of its last completed fsync. At write/fsync op number
 * `loss_at` it "loses power": every 512-byte sector written since that
 * file's last fsync is independently kept, dropped (old content restored)
 * with probability 1/2, and from then on every op fails with -EIO.
 * `seed` drives the choices. loss_at 0 never loses power.
 */
int engine_io_sim_new(const int fds[2], uint64_t loss_at, uint64_t seed,
		      struct engine_io **out, struct werr *err);
bool engine_io_sim_lost(const struct engine_io *io);
static inline void engine_io_freep(struct engine_io **io)
{
	if (*io)
		(*io)->ops->free(*io);
}

/* ---- the pipeline (one contiguous run) -------------------------------------- */

/* A hotzone, as the checkpoint callback sees it: data positions [start,end). */
struct engine_hotzone {
	uint64_t start, end;
	const uint64_t *hashes;  /* (end-start)/512 old-content hashes, or NULL */
};

/*
 * Called with the data of every earlier hotzone durable (the engine fsyncs
 * the destination before calling). `done` is the boundary: ascending runs
 * have [run.start, done) finished, descending ones [done, run.end).
 * next is the hotzone about to be written, or NULL at the end/stop. The
 * callback must make its record durable before returning 0.
 */
typedef int (*engine_checkpoint_fn)(void *arg, uint64_t done, const struct engine_hotzone *next);
/* Called after each completed write with the bytes it wrote. */
typedef void (*engine_progress_fn)(void *arg, uint64_t bytes_written);

struct engine_run {
	struct engine_io *io;
	unsigned src_file, dst_file;       /* indexes into io->fds */
	uint64_t src_base, dst_base;       /* device offset of data position 0 */
	uint64_t start, end;               /* data positions, multiples of sector_size */
	bool descending;
	enum engine_xform xform;
	uint32_t sector_size;
	const struct secbuf *old_vk, *new_vk;
	size_t chunk;                      /* bytes per I/O; 0: 1 MiB */
	size_t pool;                       /* bytes of buffers; 0: 32 MiB */
	uint64_t hotzone;                  /* bytes per checkpoint; 0: 16 MiB */
	bool hash_old;                     /* journal hashes of the old content */
	uint64_t hash_seed;
	unsigned workers;                  /* 0: online CPUs */
	engine_checkpoint_fn checkpoint;
	engine_progress_fn progress;
	void *cb_arg;
	volatile sig_atomic_t *stop;       /* set by a signal handler: checkpoint and stop */
};

/* 0 when done, -EINTR when stopped at a checkpoint, else a negative errno. */
int engine_run(const struct engine_run *run, struct werr *err);

/* ---- filesystem probing ----------------------------------------------------- */

struct engine_fsinfo {
	char type[32];            /* "" when none found */
	uint64_t size;            /* bytes the filesystem claims (0 if unknown) */
	uint32_t block_size;      /* filesystem block / sector size (0 if unknown) */
	bool is_luks;             /* a LUKS1/LUKS2 signature */
	bool other_signature;     /* recognised but not a filesystem we size (e.g. LVM) */
};
/* libblkid for the type, the superblock for the size (ext2/3/4, xfs, btrfs). */
int engine_fs_probe(int fd, const char *what, struct engine_fsinfo *fi, struct werr *err);

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

enum conv_io_kind { CONV_IO_URING = 0, CONV_IO_SYNC, CONV_IO_SIM };

struct conv_progress {
	enum conv_op op;            /* the operation that runs (never RESUME) */
	uint64_t done, total;       /* bytes */
};

struct conv_params {
	const char *device;
	const char *header;          /* detached header file, or NULL */
	enum conv_op op;
	uint32_t sector_size;        /* encrypt: 0 = 4096, or 512 when the fs needs it */
	bool tail_is_free;           /* encrypt without a recognised filesystem */
	const struct conv_keyprov *keys;
	/* tuning (0 = defaults) */
	size_t chunk, pool;
	uint64_t hotzone;
	unsigned workers;
	bool cipher_off;             /* bench only: I/O without the cipher */
	bool no_direct;              /* don't use O_DIRECT (tests on tmpfs) */
	/* I/O backend and test hooks */
	enum conv_io_kind io_kind;
	uint64_t sim_loss_at, sim_seed;
	engine_op_hook hook;
	void *hook_arg;
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

#endif
