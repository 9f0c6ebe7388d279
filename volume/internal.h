/* volume internals: shared by the volume module sources and its unit tests only. */
#ifndef WRAPD_VOLUME_INTERNAL_H
#define WRAPD_VOLUME_INTERNAL_H

#include "volume/volume.h"
#include "format/format.h"
#include "vault/vault.h"
#include "dm/dm.h"
#include "keyring/keyring.h"

#include <sys/stat.h>

/* A volume's device (and detached header file) opened for its header: the
 * one open of the operation (format/'s luks2_device; every other fd on it is
 * derived with bdev_reopen), locked, the header read, the token parsed. */
struct vdev {
	char *spec;               /* as given (path or UUID=) */
	char *path;               /* resolved data device path */
	struct luks2_device d;    /* d.dev, d.hdev, d.hdr_path, d.lock, d.hdr */
	struct wrapd_token tok;
	bool have_tok;
};
#define VDEV_INIT {.d = LUKS2_DEVICE_INIT}

enum {
	VDEV_WRITE = 1u << 0,     /* open read-write */
	VDEV_LOCK_EX = 1u << 1,   /* exclusive header lock (else shared) */
	VDEV_NEED_TOKEN = 1u << 2,/* fail without a wrapd-vault token */
	VDEV_EXCL = 1u << 3,      /* block device: O_EXCL until vdev_close */
	VDEV_UNUSED = 1u << 4,    /* refuse a device or header file anything uses */
};
int vdev_open(struct vdev *vd, const char *spec, const char *header, unsigned how,
	      struct werr *err);
void vdev_close(struct vdev *vd);

/* dm UUID prefix of a volume: "CRYPT-LUKS2-<uuid without dashes>-". */
void volume_dm_uuid_prefix(const char *luks_uuid, char *out, size_t n);

/* Mappings from sysfs (/sys/block/dm-*), which needs no dm ioctl and
 * answers "none" on a kernel without device-mapper. */
struct sysdm {
	char name[128];
	char uuid[160];
	char kname[32];           /* dm-N */
	dev_t dev;
	uint64_t size_bytes;
	bool read_only, suspended;
	char holders[512];
	char slaves[256];         /* first slave's kernel name (dm-crypt has one) */
};
/* Every dm device whose UUID starts with prefix (NULL = all). */
int sysdm_list(const char *uuid_prefix, struct sysdm **out, size_t *n);
int sysdm_by_name(const char *name, struct sysdm *out);
/* Space-separated names in /sys/class/block/<kname>/holders. */
void sysfs_holders(const char *kname, char *buf, size_t n);

/* Vault clients for the Transit mount/key a token names. */
struct vgroup {
	char *mount, *key;
	struct vault_client *vc;
	bool owned;
};
struct vgroups {
	struct vgroup g[16];
	size_t n;
};
int vgroups_get(const struct volume_ctx *ctx, struct vgroups *gs, const struct wrapd_token *tok,
		size_t *idx, struct werr *err);
void vgroups_free(struct vgroups *gs);

/* volume/keys.c: a new VK from Vault's datakey for ctx->vcfg's Transit key
 * (ctx->vc, or a client made for the call), with the token that wraps it;
 * and the VK of a token, through the client vgroups_get picks. */
int vkey_new(const struct volume_ctx *ctx, const char *uuid, struct secbuf *vk,
	     struct wrapd_token *tok, struct werr *err);
int vkey_unwrap(const struct volume_ctx *ctx, struct vgroups *gs, const struct wrapd_token *tok,
		struct secbuf *vk, struct werr *err);

/* volume/erase_plan.c: the regions an erase overwrites (they may hold
 * plaintext or the conversion journal), from a conversion state or from an
 * interrupted erase's own state. */
enum { ERASE_ON_DATA = 0, ERASE_ON_HEADER = 1 };
struct erase_geom {
	uint64_t dev_size;         /* the data device */
	uint64_t hdr_size;         /* one header copy */
	uint64_t data_offset;      /* of the data segment, on the data device */
	uint64_t seg_end;          /* end of the data segment on the data device */
	bool detached;
	uint64_t hdr_file_size;    /* detached: the header file's size */
};
struct erase_region {
	unsigned on;               /* ERASE_ON_DATA or ERASE_ON_HEADER */
	uint64_t off, len;
	bool keys;                 /* may hold a wrapped key (the parked header image):
				    * overwritten together with the key destruction */
	char what[96];
};
struct erase_plan {
	struct erase_geom g;
	struct erase_region r[8];
	size_t n;
	char conversion[64];       /* "encrypt (shift)", ... ("" when none) */
};
/* Adds [off, end) clamped to its file (nothing when empty). */
void erase_plan_add(struct erase_plan *p, unsigned on, uint64_t off, uint64_t end, bool keys,
		    const char *what);
/* p->g filled in: the regions for state (a conversion's or an erase's). */
int erase_plan_from_state(json_t *st, struct erase_plan *p);
/* Sorts the regions and merges those that overlap or touch. */
void erase_plan_merge(struct erase_plan *p);
uint64_t erase_plan_bytes(const struct erase_plan *p);
/* The erase state recorded in the header while regions are overwritten. */
json_t *erase_plan_state(const struct erase_plan *p);

/* Whether mapping m sits on vd's data device (a loop on the file for a file). */
bool vdev_backs_mapping(const struct sysdm *m, const struct vdev *vd);

/* ---- a mapping's dm table, described (volume/dmtable.c) ---- */

/* One crypt target line: "START LEN crypt CIPHER KEY IV MAJ:MIN OFFSET [N OPT...]". */
struct crypt_line {
	char cipher[64];
	char key[160];
	uint64_t start, length;    /* sectors */
	uint64_t iv_offset, offset;
	unsigned maj, min;
	uint32_t sector_size;
	char flags[256];           /* the options, space-separated */
};
/* Parses the crypt line at `line` (up to its newline); -EINVAL when it is none. */
int dm_crypt_line_parse(const char *line, struct crypt_line *c);
/* The first crypt line of a table (a split table may start with the zone). */
int dm_crypt_line_first(const char *table, struct crypt_line *c);
/* A ":N:logon:wrapd:..." keyring reference. */
bool dm_key_is_wrapd(const char *key);
/* The LUKS UUID a wrapd key reference names; -EINVAL when none. */
int dm_key_uuid(const char *key, char uuid[37]);

/* A wrapd mapping's whole table: one crypt target, or the split table of
 * an online rekey [0,a) new key | [a,b) linear over the zone device |
 * [b,size) old key (each part may be absent). Sizes in bytes. */
struct table_desc {
	unsigned targets;
	uint64_t size;             /* the end of the last target: the mapping's size */
	uint64_t data_offset;      /* sectors on the backing device of the mapping's sector 0 */
	struct crypt_line first;   /* the first crypt target (cipher, options, backing) */
	char key_ref[160];         /* the whole mapping's key; split: the old key's (of [b,size)) */
	char key_ref_new[160];     /* split: the new key's (of [0,a)), "" when no such part */
	bool split;
	bool old_in_table;         /* split: [b,size) exists (else key_ref is the new key) */
	uint64_t new_end;          /* split: a, the end of the new-key part (0 when none) */
	uint64_t zone_start, zone_len; /* split: the zone [a,b) (len 0 when none) */
};
/* -EINVAL for a table that is not one of these shapes (gaps, overlaps,
 * other target types, keys of two volumes). */
int dm_table_describe(const char *table, struct table_desc *d);

/* volume_status_list's parts (volume/close.c), for the unit tests: the
 * fields a live table gives (-EINVAL: not a wrapd mapping's table), and
 * those the header at path gives (key version, conversion in progress;
 * header_note says why when it cannot be read). */
int volume_status_from_table(struct volume_status *s, const char *table);
int volume_status_from_header(struct volume_status *s, const char *path);

/* ---- online rekey (volume/online.c) ---- */

/* What a split table is made of. Positions and sizes in bytes. */
struct online_geom {
	dev_t backing;            /* the data device */
	dev_t zone;               /* the zone device (online only) */
	uint64_t data_off, size, iv_tweak; /* iv_tweak in 512-byte sectors */
	uint32_t ss;
	unsigned flags;           /* DMCRYPT_* */
	char desc_old[KEYRING_DESC_MAX], desc_new[KEYRING_DESC_MAX];
};
/* "wrapd:<uuid>-d<digest>" for both keys. */
void online_geom_descs(struct online_geom *g, const char *uuid, unsigned od, unsigned nd);
/* Creates mapping `name` (dm UUID of luks_uuid) as [0,done) new key,
 * [done,size) old key; both keys in the thread keyring for the load only. */
int online_create_split(const struct dmcrypt_ctx *d, const char *name, const char *luks_uuid,
			const struct online_geom *g, uint64_t done, const struct secbuf *old_vk,
			const struct secbuf *new_vk, struct werr *err);

/* The live mapping of a volume under online rekey: the engine's driver. */
struct online_map {
	struct dmcrypt_ctx d;
	char name[128];           /* the user's mapping */
	char zone[128];           /* wrapd-zone-<uuid> */
	char zone_uuid[80];       /* WRAPD-ZONE-<uuid hex> */
	char uuid[37];
	struct online_geom g;
	const struct secbuf *old_vk, *new_vk; /* borrowed from the engine for the run */
	struct werr *err;
};
/* 1 and m filled when the volume on device is mapped by wrapd (online);
 * 0 when it is not mapped (or has no header); < 0 a refusal (mapped, but
 * not by a wrapd mapping of this device). */
int online_find(const struct volume_ctx *ctx, const char *device, const char *header,
		struct online_map *m, struct werr *err);
struct conv_online;
void online_map_ops(struct online_map *m, struct conv_online *on);
/* "wrapd-zone-<uuid>", the zone device of a volume under online rekey. */
void online_zone_name(const char *uuid, char name[128]);
/* Removes the volume's zone device when nothing uses it any more (the
 * mapping was closed in the middle of a rekey); 0 when there is none. */
int online_zone_cleanup(const struct dmcrypt_ctx *d, const char *uuid);

#endif
