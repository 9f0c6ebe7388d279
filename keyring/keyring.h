/*
 * keyring: volume keys in the kernel keyring, for dm-crypt to load.
 *
 * It owns: adding a volume key as a `logon` key "wrapd:<uuid>" (the type
 * userspace can never read back), removing it again (invalidate + unlink),
 * finding it the way dm-crypt does (to prove it is gone), and a cleanup
 * helper so no caller can forget the removal. Raw add_key/keyctl/request_key
 * syscalls; no libkeyutils.
 *
 * Where the key lives: the calling THREAD's keyring. dm-crypt resolves
 * ":64:logon:wrapd:<uuid>" with request_key() against the keyrings of the
 * task that issues the table-load ioctl, at load time; the thread keyring is
 * the narrowest one that task searches, so no other thread of the daemon (and
 * no other process) ever possesses the key, and the kernel drops it if the
 * thread dies before removing it. Consequence for callers: add the key, load
 * the table and remove the key on the SAME thread.
 *
 * Nothing here holds global state.
 */
#ifndef WRAPD_KEYRING_H
#define WRAPD_KEYRING_H

#include <stdint.h>

#include "common/common.h"

#define KEYRING_KEY_TYPE "logon"          /* unreadable from userspace */
#define KEYRING_DESC_PREFIX "wrapd:"       /* logon descriptions need "prefix:" */
#define KEYRING_ID_MAX 64                  /* longest <uuid> part accepted */
#define KEYRING_DESC_MAX (sizeof(KEYRING_DESC_PREFIX) + KEYRING_ID_MAX)
#define KEYRING_PAYLOAD_MAX 256            /* dm-crypt keys are far smaller */

/* A key this process added; serial 0 means "none" (safe to remove twice). */
struct keyring_key {
	int32_t serial;                    /* kernel key serial number */
	int32_t keyring;                   /* keyring it was linked into */
	char desc[KEYRING_DESC_MAX];       /* "wrapd:<uuid>" */
	size_t size;                       /* payload bytes (64 for a wrapd VK) */
};

/* Writes "wrapd:<id>" into desc. id (normally the LUKS2 UUID) must be 1..64
 * characters of [0-9A-Za-z._-]: it ends up inside a dm table, where spaces
 * and colons would change the meaning. -EINVAL otherwise. */
int keyring_desc_for(const char *id, char desc[KEYRING_DESC_MAX]);

/* Adds vk->len bytes as logon key "wrapd:<id>" to the calling thread's
 * keyring. Replaces a key of the same description there. On success *key
 * describes it; callers remove it with keyring_remove() or declare key with
 * _cleanup_keyring_key_. vk must be a secbuf (the payload is only read). */
int keyring_add_volume_key(const char *id, const struct secbuf *vk,
			   struct keyring_key *key, struct werr *err) _must_check_;

/* The general form: any logon description ("prefix:rest"), any keyring
 * (KEY_SPEC_* or a serial). Payload 1..KEYRING_PAYLOAD_MAX bytes. */
int keyring_add_logon(const char *desc, const void *payload, size_t len,
		      int32_t keyring, struct keyring_key *key, struct werr *err) _must_check_;

/* Invalidates the key (the kernel destroys it at once, wherever else it is
 * linked) and unlinks it. Idempotent: a key already gone is success, and
 * key->serial is reset to 0. Returns a negative errno only when the key may
 * still exist. */
int keyring_remove(struct keyring_key *key);

/* Looks the description up with request_key() and no upcall, i.e. in the
 * thread, process and session keyrings, exactly as dm-crypt would at table
 * load. 0 and *serial when found; -ENOKEY when absent (also when it exists
 * but is invalidated, revoked or expired). serial may be NULL. */
int keyring_find_logon(const char *desc, int32_t *serial);

static inline void keyring_removep(struct keyring_key *key)
{
	(void)keyring_remove(key);
}
/* Declare `_cleanup_keyring_key_ struct keyring_key k = KEYRING_KEY_NONE;`. */
#define _cleanup_keyring_key_ _cleanup_(keyring_removep)
#define KEYRING_KEY_NONE ((struct keyring_key){ .serial = 0 })

#endif
