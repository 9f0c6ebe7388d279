/*
 * keyring: logon keys through the raw syscalls (see keyring.h for why the
 * thread keyring).
 */
#include "keyring/keyring.h"

#include <linux/keyctl.h>
#include <sys/syscall.h>

static bool id_char_ok(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '-' || c == '_' || c == '.';
}

int keyring_desc_for(const char *id, char desc[KEYRING_DESC_MAX])
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > KEYRING_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!id_char_ok(id[i]))
			return -EINVAL;
	snprintf(desc, KEYRING_DESC_MAX, "%s%s", KEYRING_DESC_PREFIX, id);
	return 0;
}

/* A logon description must be "prefix:rest" (the kernel enforces it too);
 * we also refuse what would break a dm table: whitespace and control bytes. */
static bool logon_desc_ok(const char *desc)
{
	size_t n = strlen(desc);
	const char *colon = strchr(desc, ':');
	if (n == 0 || n >= KEYRING_DESC_MAX || !colon || colon == desc || !colon[1])
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)desc[i] <= 0x20 || desc[i] == 0x7f)
			return false;
	return true;
}

int keyring_add_logon(const char *desc, const void *payload, size_t len,
		      int32_t keyring, struct keyring_key *key, struct werr *err)
{
	*key = KEYRING_KEY_NONE;
	if (!logon_desc_ok(desc))
		return werr_set(err, -EINVAL, "invalid logon key description '%s'", desc);
	if (!payload || len == 0 || len > KEYRING_PAYLOAD_MAX)
		return werr_set(err, -EINVAL, "%s: key size %zu is not 1..%d bytes", desc, len,
				KEYRING_PAYLOAD_MAX);
	long serial = syscall(SYS_add_key, KEYRING_KEY_TYPE, desc, payload, len, keyring);
	if (serial < 0) {
		int rc = -errno;
		if (rc == -ENOSYS)
			return werr_set(err, rc, "%s: this kernel has no key retention service "
					"(CONFIG_KEYS)", desc);
		if (rc == -EDQUOT)
			return werr_set(err, rc, "%s: keyring quota exceeded (see "
					"/proc/sys/kernel/keys/maxkeys)", desc);
		return werr_set(err, rc, "%s: add_key(logon) failed: %s", desc, strerror(-rc));
	}
	key->serial = (int32_t)serial;
	key->keyring = keyring;
	key->size = len;
	snprintf(key->desc, sizeof(key->desc), "%s", desc);
	return 0;
}

int keyring_add_volume_key(const char *id, const struct secbuf *vk,
			   struct keyring_key *key, struct werr *err)
{
	char desc[KEYRING_DESC_MAX];
	*key = KEYRING_KEY_NONE;
	if (keyring_desc_for(id, desc) < 0)
		return werr_set(err, -EINVAL, "'%s' cannot name a keyring key "
				"(1..%d of [0-9A-Za-z._-])", id ? id : "", KEYRING_ID_MAX);
	if (!vk || !vk->data)
		return werr_set(err, -EINVAL, "%s: no volume key", desc);
	return keyring_add_logon(desc, vk->data, vk->len, KEY_SPEC_THREAD_KEYRING, key, err);
}

int keyring_remove(struct keyring_key *key)
{
	if (!key || key->serial == 0)
		return 0;
	/* Invalidate first: unlinking would end our possession of the key, and a
	 * logon key grants nothing to a non-possessor, so invalidation after
	 * unlink would fail with EACCES. Invalidation also destroys the key at
	 * once even if someone linked it elsewhere in the meantime. */
	long r = syscall(SYS_keyctl, KEYCTL_INVALIDATE, key->serial);
	int inval_rc = r < 0 ? -errno : 0;
	r = syscall(SYS_keyctl, KEYCTL_UNLINK, key->serial, key->keyring);
	int unlink_rc = r < 0 ? -errno : 0;

	/* Gone already (invalidated, revoked, expired, or the keyring is gone). */
	bool inval_ok = inval_rc == 0 || inval_rc == -ENOKEY || inval_rc == -EKEYREVOKED ||
			inval_rc == -EKEYEXPIRED;
	bool unlink_ok = unlink_rc == 0 || unlink_rc == -ENOKEY || unlink_rc == -EKEYREVOKED ||
			 unlink_rc == -EKEYEXPIRED;
	if (inval_ok || unlink_rc == 0) {
		/* Either the key is destroyed, or our only link to it is gone. */
		key->serial = 0;
		return 0;
	}
	return unlink_ok ? inval_rc : unlink_rc;
}

int keyring_find_logon(const char *desc, int32_t *serial)
{
	/* NULL callout info: search only, never upcall to /sbin/request-key. */
	long r = syscall(SYS_request_key, KEYRING_KEY_TYPE, desc, NULL, 0);
	if (r < 0) {
		int rc = -errno;
		if (rc == -EKEYREVOKED || rc == -EKEYEXPIRED || rc == -EKEYREJECTED)
			rc = -ENOKEY;
		return rc;
	}
	if (serial)
		*serial = (int32_t)r;
	return 0;
}
