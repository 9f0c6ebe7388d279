/*
 * engine internals: shared by the engine's own files and its tests, not an
 * API for other modules (they use engine/engine.h).
 *
 * Files: xts.c (cipher, journal hash), io.c (I/O backends), pipeline.c (one
 * contiguous run), fsprobe.c, records.c (the durable park descriptor and
 * journal slot: on-disk structs, encode/decode, their I/O), plan.c (what a
 * conversion will do: refusals before the first write, keys, the state),
 * execute.c (running it with checkpoints, finishing), recover.c (what an
 * interrupted conversion left behind), convert.c (conv_run/conv_status:
 * open, then plan, execute, finish). "Is the device held?" is blockdev/'s.
 */
#ifndef WRAPD_ENGINE_INTERNAL_H
#define WRAPD_ENGINE_INTERNAL_H

#include <assert.h>
#include <stddef.h>
#include <sys/uio.h>

#include <jansson.h>

#include "engine/engine.h"
#include "format/format.h"

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
/* SipHash-2-4 of p[0,len) under a 16-byte key. */
uint64_t engine_siphash(const uint8_t key[16], const uint8_t *p, size_t len);
/* The journal's hash key: 16 bytes of HMAC-SHA256(vk, "wrapd-journal-v1" ||
 * le64(seed)), into a secbuf. Without the VK the journal's hashes of
 * plaintext are useless: no guess about a sector can be checked. */
int engine_journal_key(const struct secbuf *vk, uint64_t seed, struct secbuf *key);
/* The journal hash of one 512-byte sub-sector: SipHash-2-4 under key, or,
 * when key is NULL (conversions started by earlier versions), the seeded
 * non-cryptographic hash. */
uint64_t engine_jhash512(const uint8_t *key, uint64_t seed, const uint8_t *p);

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
	const uint8_t *hash_key;           /* 16 bytes (engine_jhash512), or NULL */
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

/* ---- test hooks (struct conv_params.test) -------------------------------------- */

enum conv_io_kind { CONV_IO_URING = 0, CONV_IO_SYNC, CONV_IO_SIM };

struct conv_test_hooks {
	enum conv_io_kind io_kind;
	uint64_t sim_loss_at, sim_seed;  /* CONV_IO_SIM: see engine_io_sim_new */
	engine_op_hook hook;             /* called before every write and fsync */
	void *hook_arg;
	bool no_direct;                  /* don't use O_DIRECT (tests on tmpfs) */
};

/* ---- a conversion in progress (engine/convert.c and friends) --------------------- */

#define PARK_LEN (256ull * 1024)                 /* L: head bytes parked/unparked */
#define PARK_PRIOR_OFF 0ull                      /* inside the park region */
#define PARK_TARGET_OFF PARK_LEN
#define PARK_DESC_OFF (ENGINE_PARK_SIZE - 4096)
#define PARK_KIND_ENCRYPT 1u
#define PARK_KIND_DECRYPT 2u
#define HOTZONE_DEFAULT (16ull * 1024 * 1024)

struct conv {
	const struct conv_params *p;
	struct conv_test_hooks hooks;  /* p->test or the defaults */
	struct werr *err;
	const char *what;           /* device path for messages */
	/* The device is opened once (dv, with O_EXCL on a block device and the
	 * header lock, for the whole conversion); dfd is derived from it. bfd
	 * and hfd_own are borrowed from dv and hf, which close them. */
	struct luks2_device dv;
	struct bdev hf;             /* the detached header file */
	int bfd, dfd, hfd_own;      /* buffered device fd, direct device fd, header file fd */
	int fds[2];
	bool detached;
	struct engine_io *io;
	struct luks2_hdr *hdr;
	json_t *state;              /* owned */
	uint64_t dev_size;
	struct secbuf old_vk, new_vk;
	enum conv_op op;
	bool shift;
	uint32_t sector_size;
	uint64_t seg_off;           /* device offset of data position 0 (final layout) */
	uint64_t size;              /* data positions [0,size) */
	uint64_t U;                 /* shift encrypt: positions moved */
	uint64_t hash_seed;
	struct secbuf jkey;         /* the journal hash key; empty: legacy hash */
	uint64_t total, done_bytes;
	/* decrypt bubble */
	uint8_t *bubble;
	bool created_hdr_file, hdr_committed;
	bool resumed;               /* continued an interrupted conversion */
	bool have_hdr;              /* a valid header (possibly recovered from the park) */
	bool torn_new_file;         /* a header file whose first commit was torn */
	bool finished;              /* recovery completed the whole conversion */
	/* online rekey (online.c) */
	int guard_fd;               /* write end of the guardian's pipe, or -1 */
	pid_t guard_pid;
	double hold_max, hold_sum;  /* seconds from hold to release, per zone */
	uint64_t zones;
	uint64_t zone_size;         /* the zone size the run ended with */
};

/* ---- small helpers (records.c) */

/* Zeroed, 4096-aligned (O_DIRECT) buffer; abuf_free wipes it before freeing
 * (these buffers carry plaintext and header images). */
void *abuf(size_t n);
void abuf_free(void *p, size_t n);
void sha256(const void *p, size_t n, uint8_t out[32]);
void hex(const uint8_t *p, size_t n, char *out);

/* ---- the conversion state in the header (plan.c) */

uint64_t st_u64(json_t *st, const char *k);   /* UINT64_MAX when absent or bad */
int st_set_u64(json_t *st, const char *k, uint64_t v);
const char *st_str(json_t *st, const char *k);
int conv_op_from_name(const char *s, enum conv_op *op);

static inline bool conv_stop_requested(const struct conv *c)
{
	return c->p->stop && *c->p->stop;
}
static inline enum engine_xform conv_xform(const struct conv *c)
{
	if (c->p->cipher_off)
		return ENGINE_XF_COPY;
	switch (c->op) {
	case CONV_ENCRYPT: return ENGINE_XF_ENCRYPT;
	case CONV_REKEY: return ENGINE_XF_REKEY;
	default: return ENGINE_XF_DECRYPT;
	}
}

/* ---- durable records (records.c) ---------------------------------------------------
 *
 * Two records of the protocol live outside the LUKS2 header. Both are
 * little-endian, self-checking, and read back only when every check holds;
 * a torn or foreign record is "not there" (park) or refused (journal).
 */

struct le64 {
	uint8_t b[8];
};
static inline uint64_t le64_get(struct le64 v)
{
	return le64_load(v.b);
}
static inline struct le64 le64_make(uint64_t x)
{
	struct le64 v;
	le64_store(v.b, x);
	return v;
}

/*
 * The park descriptor: the last 4 KiB of the park region [D - 1 MiB, D).
 * Bytes past the struct are zero. self_sha covers every byte before it.
 */
#define PARK_MAGIC "WRAPDPRK"
#define PARK_DESC_VERSION 1u
struct park_desc_disk {
	char magic[8];              /* "WRAPDPRK" */
	struct le64 version;        /* PARK_DESC_VERSION */
	struct le64 kind;           /* PARK_KIND_ENCRYPT or PARK_KIND_DECRYPT */
	struct le64 dev_size;       /* the device it was written for, bytes */
	struct le64 len;            /* PARK_LEN */
	uint8_t prior_sha[32];      /* SHA-256 of the prior copy (the head as it was) */
	uint8_t target_sha[32];     /* SHA-256 of the target copy (the head to be) */
	char uuid[40];              /* the volume's UUID, NUL-padded (informational) */
	uint8_t self_sha[32];       /* SHA-256 of bytes [0, 144) */
};
static_assert(sizeof(struct park_desc_disk) == 176, "park descriptor layout");
static_assert(offsetof(struct park_desc_disk, prior_sha) == 40, "park descriptor layout");
static_assert(offsetof(struct park_desc_disk, uuid) == 104, "park descriptor layout");
static_assert(offsetof(struct park_desc_disk, self_sha) == 144, "park descriptor layout");

/* The descriptor decoded. */
struct park_desc {
	uint32_t kind;
	uint64_t dev_size, len;
	uint8_t prior_sha[32], target_sha[32];
	char uuid[40];
};
/* Fills a 4096-byte block with the descriptor (and its self checksum). */
void park_desc_encode(const struct park_desc *pd, uint8_t blk[4096]);
/* 0 when blk holds a descriptor whose magic, version and self checksum
 * hold; -ENOENT otherwise (torn, foreign, or never written). */
int park_desc_decode(const uint8_t blk[4096], struct park_desc *pd);

/*
 * A journal slot: a 4096-byte head, then one le64 hash per 512-byte
 * sub-sector of the hotzone, padded to 4096. Two slots alternate at
 * ENGINE_JOURNAL_OFF in the header's keyslots area; the header state names
 * the live one with the SHA-256 of its hash array.
 */
#define JNL_MAGIC "WRAPDJNL"
#define JNL_VERSION 1u
#define JNL_HASHES_OFF 4096u
struct jnl_head_disk {
	char magic[8];              /* "WRAPDJNL" */
	struct le64 version;        /* JNL_VERSION */
	struct le64 start, end;     /* the hotzone, data positions */
	uint8_t sha[32];            /* SHA-256 of the hash array (n * 8 bytes) */
};
static_assert(sizeof(struct jnl_head_disk) == 64, "journal head layout");
static_assert(offsetof(struct jnl_head_disk, sha) == 32, "journal head layout");

/* Bytes of one slot for a hotzone of n sub-sectors / of at most `hotzone` bytes. */
size_t jnl_slot_len(uint64_t nsub);
uint64_t jslot_size(uint64_t hotzone);
/* Encodes [start,end) and its hashes into buf (jnl_slot_len bytes, zeroed
 * by the caller); sha_hex gets the hex SHA-256 the header state records. */
void jnl_encode(uint64_t start, uint64_t end, const uint64_t *hashes, uint8_t *buf,
		char sha_hex[65]);
/* 0 and the hashes when buf holds exactly the slot the header names;
 * -EUCLEAN when anything differs (magic, range, checksum, torn). */
int jnl_decode(const uint8_t *buf, uint64_t start, uint64_t end, const char *sha_hex,
	       uint64_t *hashes);

static inline uint64_t park_base(const struct conv *c)
{
	return c->dev_size - ENGINE_PARK_SIZE;
}
/* Their I/O through the conversion's backend. */
int park_write(struct conv *c, uint32_t kind, const uint8_t *prior, const uint8_t *target);
int park_read(struct conv *c, struct park_desc *pd, uint8_t *prior, uint8_t *target);
int park_clear(struct conv *c);
int unpark_head(struct conv *c, const uint8_t *prior, const uint8_t *target);
bool head_has_target(struct conv *c, const uint8_t *prior, const uint8_t *target);
int journal_write(struct conv *c, unsigned slot, uint64_t hotzone,
		  const struct engine_hotzone *hz, char sha_hex[65]);
int journal_read(struct conv *c, unsigned slot, uint64_t hotzone, uint64_t a, uint64_t e,
		 const char *sha_hex, uint64_t *hashes);

/* ---- the plan (plan.c): everything decided before data moves */

/* No header yet: refusals, then a new header (and, shift, the parked head). */
int plan_fresh(struct conv *c);
/* A header: resume its conversion, or start rekey/decrypt on it. */
int plan_from_header(struct conv *c);
/* Loads the keys a running conversion needs, from the header and state. */
int load_keys(struct conv *c, bool with_new);
int token_from_json(json_t *j, struct wrapd_token *t);

/* The journal hash key from the state (fresh: record "siphash-vk"). */
int journal_key_setup(struct conv *c, bool fresh);

/* ---- execution (execute.c) */

/* Commits c->hdr (with c->state) through format/ and the I/O backend. */
int hdr_commit(struct conv *c);
/* Runs the planned conversion to the end (or to -EINTR) and finishes it. */
int conv_execute(struct conv *c);
/* The header after the last sector: the new token and digest (rekey),
 * requirement and state gone, journal wiped; committed. */
int conv_finish_header(struct conv *c);
/* A hotzone size hz rounded down to the chunk, -ENOSPC when the header's
 * keyslots area cannot hold two journal slots for it. */
int inplace_zone(struct conv *c, uint64_t hz, uint64_t *out);
/* The in-place journal's hotzone size (recorded in the state). */
int inplace_jhz(struct conv *c, uint64_t *jhz);
/* Online: one held zone; *journaled when it may have been written. */
int run_zone(struct conv *c, uint64_t a, uint64_t b, uint64_t jhz, bool *journaled);

/* ---- online rekey (online.c) */

/* Runs (or resumes) a rekey on the live mapping, c->p->online. */
int online_execute(struct conv *c);

/* ---- recovery (recover.c) */

struct keys2 {
	struct xts_key oldk, newk;
};
int keys2_init(struct conv *c, struct keys2 *k, enum engine_xform xf);
void keys2_free(struct keys2 *k);
/* Re-runs an in-place hotzone after a crash from its journal. */
int recover_hotzone(struct conv *c, uint64_t a, uint64_t e, const uint64_t *hashes);
/* Finishes the hotzone [a,e) the state names as journaled (held, or not
 * mapped at all): every sub-sector still old is converted, the rest was
 * written; fsynced. The journal's layout is the state's "jhotzone". */
int zone_from_journal(struct conv *c, uint64_t a, uint64_t e);
/* Reads the header or, at the head of an attached device, what a crash
 * while (un)parking left; sets c->have_hdr / c->resumed / c->finished.
 * 0, or -ENODEV when nothing was converted, or an error. */
int recover_head(struct conv *c);

#endif
