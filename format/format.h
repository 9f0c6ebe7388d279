/*
 * format: the LUKS2-compatible on-disk volume header.
 *
 * It owns: reading both header copies (checksums, seqid selection, scanning
 * for the secondary copy when the primary is damaged) and validating every
 * rule of shared/design/FACTS-luks2.md, rejecting rather than guessing;
 * writing (primary then secondary, seqid+1, checksums, the FACTS write order,
 * repairing a damaged copy); flock locking compatible with cryptsetup;
 * building a new wrapd header; the pbkdf2-sha256 VK digest; the `wrapd-vault`
 * token; mandatory requirements (cryptsetup's reencryption and unknown ones
 * are shown but refused; wrapd's own `wrapd-reencrypt`); the opaque
 * conversion state the conversion engine keeps in the header; generic
 * segments so the engine can describe half-converted layouts.
 *
 * The parsed JSON tree is kept whole (hdr->json), so JSON wrapd does not know
 * (other tools' tokens, keyslots, flags) survives a rewrite. Modules may read
 * hdr->json; they change it only through the functions below, which keep the
 * derived facts in struct luks2_hdr current and re-validate before writing.
 *
 * Every header is hostile input. Nothing here holds global state.
 */
#ifndef WRAPD_FORMAT_H
#define WRAPD_FORMAT_H

#include <jansson.h>

#include "blockdev/blockdev.h"
#include "common/common.h"

/* ---- on-disk constants ------------------------------------------------ */
#define LUKS2_MAGIC_LEN 6
#define LUKS2_MAGIC_1ST "LUKS\xba\xbe"
#define LUKS2_MAGIC_2ND "SKUL\xba\xbe"
#define LUKS2_BIN_SIZE 4096u               /* binary header; JSON area follows */
#define LUKS2_LABEL_LEN 48
#define LUKS2_CSUM_ALG_LEN 32
#define LUKS2_SALT_LEN 64
#define LUKS2_UUID_LEN 40
#define LUKS2_SUBSYSTEM_LEN 48
#define LUKS2_CSUM_LEN 64
#define LUKS2_HDR_MIN (16u * 1024)         /* smallest allowed hdr_size */
#define LUKS2_HDR_MAX (4u * 1024 * 1024)   /* largest allowed hdr_size */
#define LUKS2_KEYSLOTS_MAX (128ull * 1024 * 1024)
#define LUKS2_MAX_TOKENS 32
#define LUKS2_MAX_KEYSLOTS 32
/* At most this many references in one digest's "segments" or a "keyslots"
 * list (cryptsetup's LUKS2_SEGMENT_MAX and LUKS2_KEYSLOTS_MAX are 32). */
#define LUKS2_MAX_REFS 32
/*
 * Highest pbkdf2 iteration count of a digest. cryptsetup sizes its digest to
 * about 125 ms of PBKDF2 (LUKS_MKD_ITERATIONS_MS; at least 1000): some
 * 200,000-1,000,000 iterations on today's CPUs; wrapd writes 1000. A hostile
 * header could otherwise demand up to UINT32_MAX and stall `open --all` for
 * hours; this bound is about 0.7 s of sha256 here (about 1.5 s of sha512).
 */
#define LUKS2_DIGEST_ITER_MAX 2000000u

/* ---- wrapd defaults ---------------------------------------------------- */
#define WRAPD_VK_BYTES 64                   /* 512-bit aes-xts-plain64 VK */
/* The only cipher a wrapd volume may name (with a WRAPD_VK_BYTES key): the
 * header is unauthenticated, so any other value is refused when it is read. */
#define WRAPD_CIPHER "aes-xts-plain64"
#define WRAPD_DEFAULT_SECTOR_SIZE 4096u
#define WRAPD_DEFAULT_DATA_OFFSET (16ull * 1024 * 1024)
#define WRAPD_DEFAULT_HDR_SIZE LUKS2_HDR_MIN /* metadata size per copy */
#define WRAPD_DIGEST_ITERATIONS 1000u       /* VK is random: no stretching needed */
#define WRAPD_TOKEN_TYPE "wrapd-vault"
#define WRAPD_CONVERSION_TOKEN_TYPE "wrapd-conversion"
#define WRAPD_REQ_REENCRYPT "wrapd-reencrypt" /* set by the conversion engine */

/* ---- the parsed header ------------------------------------------------- */

enum luks2_copy_status {
	LUKS2_COPY_OK = 0,       /* valid and used */
	LUKS2_COPY_STALE,        /* valid but lower seqid than the other: repaired on next write */
	LUKS2_COPY_MISSING,      /* no magic where it was looked for */
	LUKS2_COPY_BAD_CSUM,     /* magic present, checksum wrong */
	LUKS2_COPY_INVALID,      /* checksum fine (or not reached) but a rule is broken */
	LUKS2_COPY_IO,           /* could not be read (device too short, I/O error) */
};

struct luks2_copy_info {
	enum luks2_copy_status status;
	uint64_t offset;           /* byte offset where it was found or looked for */
	uint64_t hdr_size;         /* as the copy claims (0 if unknown) */
	uint64_t seqid;            /* as the copy claims */
	int rc;                    /* negative errno for a bad copy */
	char why[256];             /* one line for a bad copy: "checksum mismatch", ... */
};

struct luks2_hdr {
	/* Binary header fields of the copy in use (strings NUL-terminated). */
	uint64_t hdr_size;          /* metadata size per copy: binary + JSON area */
	uint64_t seqid;
	char label[LUKS2_LABEL_LEN + 1];
	char subsystem[LUKS2_SUBSYSTEM_LEN + 1];
	char uuid[LUKS2_UUID_LEN + 1];
	char checksum_alg[LUKS2_CSUM_ALG_LEN + 1];

	/* The whole JSON area as parsed (owned); unknown members are kept. */
	json_t *json;

	/* Derived facts, refreshed by every function that changes the header. */
	uint64_t json_size;         /* config.json_size == hdr_size - 4096 */
	uint64_t keyslots_size;     /* config.keyslots_size */
	uint64_t data_offset;       /* lowest offset of a non-backup segment, bytes */
	uint64_t data_size;         /* bytes, sum of fixed segments; valid unless data_dynamic */
	bool data_dynamic;          /* last segment runs to the end of the device */
	uint32_t sector_size;       /* of the first crypt segment (0 when none) */
	char cipher[64];            /* encryption of the first crypt segment ("" when none) */
	unsigned key_size;          /* VK bytes: from a bound keyslot, or 64 for wrapd; 0 unknown */
	unsigned n_keyslots, n_tokens, n_segments, n_digests;
	bool has_wrapd_token;
	bool has_conversion_state;  /* a wrapd-conversion token is present */
	bool req_wrapd_reencrypt;   /* mandatory requirement wrapd-reencrypt set */
	bool req_cryptsetup_reencrypt; /* online-reencrypt* (cryptsetup's reencryption) */
	bool req_unknown;           /* some other mandatory requirement */
	char req_unknown_name[64];  /* first unknown one, for messages */

	/* Which copy was used and what was wrong with the other. */
	int used_copy;              /* 0 primary, 1 secondary */
	struct luks2_copy_info copy[2];
};

void luks2_hdr_free(struct luks2_hdr *hdr);
static inline void luks2_hdr_freep(struct luks2_hdr **h) { luks2_hdr_free(*h); }
#define _cleanup_luks2_hdr_ _cleanup_(luks2_hdr_freep)

/* ---- reading ----------------------------------------------------------- */

/*
 * Reads both copies from fd (a block device, a file, or a detached header
 * file). Uses the valid copy with the higher seqid; a damaged or stale other
 * copy is recorded in hdr->copy[] and repaired by the next luks2_hdr_write().
 * Fails when neither copy is valid; the message then names both reasons.
 * `what` names the device or file in messages. On failure, when `diag` is not
 * NULL it receives a header with only copy[] filled (for `inspect`), to be
 * freed by the caller; else it is set to NULL.
 * -ENODEV: no LUKS magic anywhere (not a LUKS2 device).
 * -EINVAL: LUKS magic found but no valid copy.
 */
int luks2_hdr_read(int fd, const char *what, struct luks2_hdr **out,
		   struct luks2_hdr **diag, struct werr *err);
/* The same over a memory image of the start of a device (fuzzing, backups). */
int luks2_hdr_parse(const void *buf, size_t len, const char *what, struct luks2_hdr **out,
		    struct luks2_hdr **diag, struct werr *err);

/* Re-validates hdr->json against every rule and refreshes the derived facts. */
int luks2_hdr_validate(struct luks2_hdr *hdr, struct werr *err);

/* Bytes from the device start up to the end of the keyslots area:
 * 2 * hdr_size + keyslots_size. This is what `header backup` saves. */
uint64_t luks2_hdr_areas_size(const struct luks2_hdr *hdr);

/* ---- writing ----------------------------------------------------------- */

/*
 * Validates, then writes both copies with seqid+1 (primary, then secondary;
 * each: binary header with zero csum, JSON area, binary header with csum),
 * fsyncing in between. A damaged copy is thereby repaired. Fresh salts per
 * copy. Refuses (luks2_check_writable) a header wrapd must not modify.
 * hdr->seqid and copy[] are updated on success. The caller holds the lock.
 */
int luks2_hdr_write(int fd, struct luks2_hdr *hdr, const char *what, struct werr *err);

/*
 * Where a commit writes: the caller's own I/O path, so that a caller with an
 * I/O backend of its own (the conversion engine: O_DIRECT, io_uring, the
 * power-loss simulator) sees every header write. Offsets are relative to the
 * header's start; buffers are 4096-byte aligned, lengths multiples of 4096.
 * Both return 0 or a negative errno.
 */
struct luks2_writer {
	int (*pwrite)(void *arg, const void *buf, size_t len, uint64_t off);
	int (*sync)(void *arg);  /* every completed write before it is durable */
	void *arg;
};
/* luks2_hdr_write through w: the one header commit (same checks, order,
 * seqid + 1 and read-back check). luks2_hdr_write is this over an fd. */
int luks2_hdr_commit(const struct luks2_writer *w, struct luks2_hdr *hdr, const char *what,
		     struct werr *err);
/* The image luks2_hdr_commit would write with the current seqid (both
 * copies, 2 * hdr_size bytes into buf), after the same checks, including the
 * read-back. For a caller that must place the image itself (the engine parks
 * it in the tail before it goes onto the head). */
int luks2_hdr_image(struct luks2_hdr *hdr, uint8_t *buf, size_t len, const char *what,
		    struct werr *err);
/* Serialises both copies into buf (2 * hdr_size bytes, caller-allocated) as
 * they would be written with the current seqid; used by write and backups. */
int luks2_hdr_serialize(const struct luks2_hdr *hdr, uint8_t *buf, size_t len, struct werr *err);

/* ---- locking (compatible with cryptsetup) ------------------------------ */

struct luks2_lock {
	int fd;                    /* -1 when not held */
	char path[64];             /* /run/cryptsetup/L_<maj>:<min>, or "" for files */
};
#define LUKS2_LOCK_INIT {.fd = -1, .path = ""}
/*
 * Block devices: flock on /run/cryptsetup/L_<major>:<minor> (created 0600 in
 * a 0700 directory, as cryptsetup does). Regular files: flock on the file
 * itself (devfd's file). Blocks until the lock is available.
 */
int luks2_lock(int devfd, const char *what, bool exclusive, struct luks2_lock *lk,
	       struct werr *err);
void luks2_unlock(struct luks2_lock *lk);
static inline void luks2_unlockp(struct luks2_lock *lk) { luks2_unlock(lk); }
#define _cleanup_luks2_lock_ _cleanup_(luks2_unlockp)

/* ---- building a new wrapd header --------------------------------------- */

struct luks2_new_params {
	const char *uuid;          /* NULL: random v4 */
	const char *label;         /* NULL: empty; at most 47 bytes */
	const char *subsystem;     /* NULL: empty; at most 47 bytes */
	uint32_t sector_size;      /* 0: 4096 */
	uint64_t data_offset;      /* 0: 16 MiB; multiple of sector_size and 4096 */
	uint64_t hdr_size;         /* 0: 16 KiB; an allowed hdr_size */
	uint64_t keyslots_size;    /* 0: as cryptsetup: data_offset - 2*hdr_size, max 128 MiB */
	const char *cipher;        /* NULL: aes-xts-plain64 */
	uint32_t iterations;       /* 0: WRAPD_DIGEST_ITERATIONS */
};

/* Builds a header (seqid 0, never written) with one dynamic crypt segment at
 * data_offset and a pbkdf2-sha256 digest of vk (vk->len must be 64 for
 * aes-xts-plain64). No keyslots, no tokens yet. */
int luks2_hdr_new(const struct luks2_new_params *p, const struct secbuf *vk,
		  struct luks2_hdr **out, struct werr *err);

/* ---- VK digest (pbkdf2-sha256) ----------------------------------------- */

/* Adds a new pbkdf2-sha256 digest of vk with no keyslots and no segments;
 * returns its id. Assign it to segments with luks2_segments_set(). */
int luks2_digest_add(struct luks2_hdr *hdr, const struct secbuf *vk, uint32_t iterations,
		     unsigned *digest_id, struct werr *err);
/* Removes a digest (must not be assigned to a segment). */
int luks2_digest_remove(struct luks2_hdr *hdr, unsigned digest_id, struct werr *err);
/* Checks vk against digest `digest_id` in constant time, with a length check
 * against hdr->key_size. 0 when it matches, -EPERM when not. */
int luks2_digest_verify(const struct luks2_hdr *hdr, unsigned digest_id,
			const struct secbuf *vk, struct werr *err);
/* Checks vk against the digest covering the first crypt segment. */
int luks2_vk_verify(const struct luks2_hdr *hdr, const struct secbuf *vk, struct werr *err);
/* The id of the digest covering segment `segment_id`, or -ENOENT. */
int luks2_digest_for_segment(const struct luks2_hdr *hdr, unsigned segment_id);

/* ---- segments (generic, for the conversion engine) --------------------- */

struct luks2_segment {
	unsigned id;               /* out: key in "segments"; ignored by set (ids are 0..n-1) */
	char type[16];             /* "crypt" or "linear" */
	uint64_t offset;           /* bytes, multiple of 512 */
	uint64_t size;             /* bytes, multiple of sector_size; ignored when dynamic */
	bool dynamic;              /* only the last segment */
	uint64_t iv_tweak;         /* crypt: in 512-byte sectors */
	char encryption[64];       /* crypt */
	uint32_t sector_size;      /* crypt */
	int digest;                /* crypt: id of the digest that covers it; -1 none */
	json_t *extra;             /* optional further members (e.g. "flags"); get: new
				    * ref or NULL; set: borrowed */
};
/* All segments ordered by id (malloc'ed array; free with luks2_segments_free). */
int luks2_segments_get(const struct luks2_hdr *hdr, struct luks2_segment **segs, size_t *n,
		       struct werr *err);
void luks2_segments_free(struct luks2_segment *segs, size_t n);
/* Replaces all segments with segs[0..n-1] (ids 0..n-1) and rewrites every
 * digest's "segments" list from segs[].digest. Validates the result and
 * refreshes hdr's derived facts; on failure hdr is unchanged. */
int luks2_segments_set(struct luks2_hdr *hdr, const struct luks2_segment *segs, size_t n,
		       struct werr *err);
/* Changes config.keyslots_size (multiple of 4096, <= 128 MiB, fitting the
 * keyslot areas). Used when a conversion moves the data offset. */
int luks2_keyslots_size_set(struct luks2_hdr *hdr, uint64_t keyslots_size, struct werr *err);

/* ---- the wrapd-vault token --------------------------------------------- */

struct wrapd_token {
	char *vault_addr;
	char *vault_namespace;     /* "" when none */
	char *vault_mount;
	char *vault_key;
	unsigned key_version;
	char *ciphertext;          /* "vault:vN:..." */
	char *context;             /* Base64 of the context bytes */
	char *volume_name;         /* optional "volume_name" (wrapctl format --name);
				    * NULL when absent; set keeps the existing one when NULL */
};
void wrapd_token_free(struct wrapd_token *t);
/* -ENOENT when the header has no wrapd-vault token; -EINVAL (message) when
 * it is malformed. token_id may be NULL. */
int wrapd_token_get(const struct luks2_hdr *hdr, struct wrapd_token *out, unsigned *token_id,
		    struct werr *err);
/* Sets the fields of the existing wrapd-vault token (other fields of it are
 * kept), or adds one at the lowest free id. Validates the fields. */
int wrapd_token_set(struct luks2_hdr *hdr, const struct wrapd_token *t, struct werr *err);
/* Removes the wrapd-vault token (crypto-erase). */
int wrapd_token_remove(struct luks2_hdr *hdr, struct werr *err);

/* ---- requirements ------------------------------------------------------ */

/* True when config.requirements.mandatory contains name. */
bool luks2_requirement_has(const struct luks2_hdr *hdr, const char *name);
/* Only WRAPD_REQ_REENCRYPT may be set or cleared through wrapd. */
int luks2_requirement_set(struct luks2_hdr *hdr, const char *name, bool on, struct werr *err);
/*
 * 0 when wrapd may activate (map) the volume: no unknown mandatory
 * requirement, no cryptsetup reencryption, no wrapd-reencrypt (a volume in
 * mid-conversion is only opened by the engine, which calls
 * luks2_check_writable instead), at least one crypt segment covered by a
 * digest. Else -EPERM with a clear message naming `what`.
 */
int luks2_check_activatable(const struct luks2_hdr *hdr, const char *what, struct werr *err);
/* 0 when wrapd may rewrite the header: no unknown mandatory requirement and
 * no cryptsetup reencryption (wrapd-reencrypt is fine). Else -EPERM. */
int luks2_check_writable(const struct luks2_hdr *hdr, const char *what, struct werr *err);

/* ---- conversion state (opaque to this module) -------------------------- */

/* The JSON object the engine stored, as a new reference; -ENOENT when none.
 * Kept in a token {"type":"wrapd-conversion","keyslots":[],"state":{...}}
 * which cryptsetup tolerates and preserves. */
int luks2_conversion_get(const struct luks2_hdr *hdr, json_t **state, struct werr *err);
/* Stores a deep copy of state (a JSON object); NULL removes it. */
int luks2_conversion_set(struct luks2_hdr *hdr, const json_t *state, struct werr *err);

/* ---- helpers ----------------------------------------------------------- */

/*
 * Opens a block device or regular file for header work. write: O_RDWR, and
 * for block devices also O_EXCL when excl (fails with -EBUSY and a message
 * while the device is mounted or mapped). Returns the fd and the size.
 */
int luks2_dev_open(const char *path, bool write, bool excl, int *fd, uint64_t *size,
		   struct werr *err);

/* ---- a device opened for one header operation ---------------------------- */

/*
 * The one "open + lock + read header" of wrapd (volume's vdev_open, the
 * engine and the CLI all go through it). The data device, and a detached
 * header file, are each opened once through blockdev/ (any further fd, such
 * as the engine's O_DIRECT one, is derived with bdev_reopen and checked to be
 * the same device); then the cryptsetup-compatible lock on the header; then,
 * with LUKS2_DEV_READ, the header. Close with luks2_device_close, also after
 * a failure.
 */
struct luks2_device {
	struct bdev dev;            /* the data device (dev.size its size) */
	struct bdev hdev;           /* the detached header file; hdev.fd == -1 when attached */
	const char *hdr_path;       /* where the header is: hdev.path or dev.path */
	struct luks2_lock lock;
	struct luks2_hdr *hdr;      /* with LUKS2_DEV_READ */
};
#define LUKS2_DEVICE_INIT {.dev = BDEV_INIT, .hdev = BDEV_INIT, .lock = LUKS2_LOCK_INIT}
enum {
	LUKS2_DEV_WRITE = 1u << 0,    /* O_RDWR, else O_RDONLY */
	LUKS2_DEV_EXCL = 1u << 1,     /* a block device stays O_EXCL until close */
	LUKS2_DEV_LOCK_EX = 1u << 2,  /* exclusive header lock, else shared */
	LUKS2_DEV_LOCK_TRY = 1u << 3, /* go on without the lock when it cannot be taken (lock.fd == -1) */
	LUKS2_DEV_UNUSED = 1u << 4,   /* refuse a device or header file anything uses */
	LUKS2_DEV_READ = 1u << 5,     /* read the header (-ENODEV: "no LUKS2 header here") */
	LUKS2_DEV_NO_LOCK = 1u << 6,  /* a peek that must not wait for a running operation */
};
int luks2_device_open(struct luks2_device *d, const char *path, const char *header, unsigned how,
		      struct werr *err);
void luks2_device_close(struct luks2_device *d);
static inline void luks2_device_closep(struct luks2_device *d) { luks2_device_close(d); }
#define _cleanup_luks2_device_ _cleanup_(luks2_device_closep)
/* The fd the header is on (the header file's, else the device's). */
static inline int luks2_device_hfd(const struct luks2_device *d)
{
	return d->hdev.fd >= 0 ? d->hdev.fd : d->dev.fd;
}

/* Random v4 UUID, canonical lowercase, 36 characters + NUL. */
int luks2_uuid_generate(char out[37]);
/* The one UUID check of wrapd: is s a 36-character UUID (8-4-4-4-12 hex
 * digits, either case)? 0 and, when out is not NULL, its canonical lowercase
 * form; -EINVAL otherwise. */
int luks2_uuid_canon(const char *s, char out[37]);
/* Is s a canonical lowercase 36-character UUID? */
bool luks2_uuid_valid(const char *s);
const char *luks2_copy_status_str(enum luks2_copy_status s);

#endif
