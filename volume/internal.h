/* volume internals: shared by the volume module sources and its unit tests only. */
#ifndef WRAPD_VOLUME_INTERNAL_H
#define WRAPD_VOLUME_INTERNAL_H

#include "volume/volume.h"
#include "blockdev/blockdev.h"
#include "format/format.h"
#include "vault/vault.h"

#include <sys/stat.h>

/* A device (or detached header file) opened for its header: the one open of
 * the operation (every other fd on it is derived with bdev_reopen). */
struct vdev {
	char *spec;               /* as given (path or UUID=) */
	char *path;               /* resolved data device path */
	char *hdr_path;           /* the header's path (== path unless detached) */
	struct bdev dev;          /* data device (O_RDONLY or O_RDWR); dev.st its identity */
	struct bdev hdev;         /* detached header file; hdev.fd == -1 when attached */
	struct luks2_lock lock;
	struct luks2_hdr *hdr;
	struct wrapd_token tok;
	bool have_tok;
};
#define VDEV_INIT {.dev = BDEV_INIT, .hdev = BDEV_INIT, .lock = LUKS2_LOCK_INIT}

enum {
	VDEV_WRITE = 1u << 0,     /* open read-write */
	VDEV_LOCK_EX = 1u << 1,   /* exclusive header lock (else shared) */
	VDEV_NEED_TOKEN = 1u << 2,/* fail without a wrapd-vault token */
	VDEV_EXCL = 1u << 3,      /* block device: O_EXCL until vdev_close (refuses one in use) */
};
int vdev_open(struct vdev *vd, const char *spec, const char *header, unsigned how,
	      struct werr *err);
void vdev_close(struct vdev *vd);
static inline int vdev_hfd(const struct vdev *vd) { return vd->hdev.fd >= 0 ? vd->hdev.fd : vd->dev.fd; }

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

#endif
