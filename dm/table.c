/*
 * dm: the crypt target table as cryptsetup writes it for a LUKS2 segment,
 * the dm UUID, and the choice of performance flags. Pure functions, unit
 * tested on any host.
 */
#include "dm/dm.h"

#include <inttypes.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>

/* Printable, no whitespace: one field of a whitespace-separated table. */
static bool table_word_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static const struct {
	unsigned flag;
	const char *word;
} flag_words[] = {
	/* cryptsetup's order; dm-crypt accepts any, but tables are compared as text. */
	{ DMCRYPT_ALLOW_DISCARDS, "allow_discards" },
	{ DMCRYPT_SAME_CPU_CRYPT, "same_cpu_crypt" },
	{ DMCRYPT_SUBMIT_FROM_CRYPT_CPUS, "submit_from_crypt_cpus" },
	{ DMCRYPT_NO_READ_WORKQUEUE, "no_read_workqueue" },
	{ DMCRYPT_NO_WRITE_WORKQUEUE, "no_write_workqueue" },
};

static int table_check(const struct dmcrypt_table *t, struct werr *err)
{
	unsigned known = 0;
	for (size_t i = 0; i < ARRAY_SIZE(flag_words); i++)
		known |= flag_words[i].flag;

	if (!table_word_ok(t->cipher, 128))
		return werr_set(err, -EINVAL, "crypt table: invalid cipher '%s'",
				t->cipher ? t->cipher : "");
	/* The key is only ever a keyring reference: a hex key in a table is
	 * exactly what wrapd promises never to produce. */
	if (!table_word_ok(t->key_desc, 4000) || !strchr(t->key_desc, ':'))
		return werr_set(err, -EINVAL, "crypt table: invalid key description '%s'",
				t->key_desc ? t->key_desc : "");
	if (t->key_size == 0 || t->key_size > 1024)
		return werr_set(err, -EINVAL, "crypt table: key size %u is not 1..1024 bytes",
				t->key_size);
	if (major(t->backing) == 0 && minor(t->backing) == 0)
		return werr_set(err, -EINVAL, "crypt table: no backing device");
	if (t->sector_size != 512 && t->sector_size != 1024 && t->sector_size != 2048 &&
	    t->sector_size != 4096)
		return werr_set(err, -EINVAL, "crypt table: sector size %u is not 512, 1024, "
				"2048 or 4096", t->sector_size);
	if (t->length == 0)
		return werr_set(err, -EINVAL, "crypt table: empty mapping");
	/* dm-crypt refuses a length that is not a whole number of sectors. */
	if (t->length % (t->sector_size / DMCRYPT_SECTOR))
		return werr_set(err, -EINVAL, "crypt table: length %" PRIu64 " sectors is not a "
				"multiple of the %u-byte encryption sector", t->length,
				t->sector_size);
	if (t->flags & ~known)
		return werr_set(err, -EINVAL, "crypt table: unknown flags 0x%x", t->flags & ~known);
	return 0;
}

int dmcrypt_table_params(const struct dmcrypt_table *t, char **params, struct werr *err)
{
	*params = NULL;
	int rc = table_check(t, err);
	if (rc < 0)
		return rc;

	char opts[256] = "";
	size_t used = 0;
	unsigned n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(flag_words); i++) {
		if (t->flags & flag_words[i].flag) {
			used += (size_t)snprintf(opts + used, sizeof(opts) - used, " %s",
						 flag_words[i].word);
			n++;
		}
	}
	if (t->sector_size != DMCRYPT_SECTOR) {
		used += (size_t)snprintf(opts + used, sizeof(opts) - used, " sector_size:%u",
					 t->sector_size);
		n++;
	}
	/* LUKS2 never sets iv_large_sectors: the IV counts 512-byte sectors. */

	char count[16] = "";
	if (n)
		snprintf(count, sizeof(count), " %u", n);
	if (asprintf(params, "%s :%u:logon:%s %" PRIu64 " %u:%u %" PRIu64 "%s%s", t->cipher,
		     t->key_size, t->key_desc, t->iv_offset, major(t->backing), minor(t->backing),
		     t->offset, count, opts) < 0) {
		*params = NULL;
		return werr_set(err, -ENOMEM, "crypt table: out of memory");
	}
	return 0;
}

int dmcrypt_table_line(const struct dmcrypt_table *t, char **line, struct werr *err)
{
	_cleanup_free_ char *params = NULL;
	*line = NULL;
	int rc = dmcrypt_table_params(t, &params, err);
	if (rc < 0)
		return rc;
	if (asprintf(line, "0 %" PRIu64 " crypt %s", t->length, params) < 0) {
		*line = NULL;
		return werr_set(err, -ENOMEM, "crypt table: out of memory");
	}
	return 0;
}

unsigned dmcrypt_perf_flags_for(unsigned kmajor, unsigned kminor)
{
	if (kmajor > 5 || (kmajor == 5 && kminor >= 9))
		return DMCRYPT_NO_READ_WORKQUEUE | DMCRYPT_NO_WRITE_WORKQUEUE;
	return 0;
}

int dmcrypt_kernel_version(unsigned *kmajor, unsigned *kminor)
{
	struct utsname u;
	if (uname(&u) < 0)
		return -errno;
	if (sscanf(u.release, "%u.%u", kmajor, kminor) != 2)
		return -EINVAL;
	return 0;
}

bool dmcrypt_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > DMCRYPT_NAME_MAX || !strcmp(name, ".") || !strcmp(name, "..") ||
	    name[0] == '-')
		return false;
	/* libdevmapper's unmangled whitelist, minus ':' and '=' which make
	 * awkward /dev/mapper names, and '#' which starts a comment in the
	 * volume table (whose names are mapping names). */
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '+' || c == '-' || c == '.' || c == '@' || c == '_'))
			return false;
	}
	return true;
}

int dmcrypt_dm_uuid(const char *luks_uuid, const char *name, char *out, size_t cap)
{
	char hex[64];
	size_t h = 0;
	if (!dmcrypt_name_valid(name) || !luks_uuid || !*luks_uuid)
		return -EINVAL;
	for (const char *p = luks_uuid; *p; p++) {
		if (*p == '-')
			continue;
		bool ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			  (*p >= 'A' && *p <= 'F');
		if (!ok || h + 1 >= sizeof(hex))
			return -EINVAL;
		hex[h++] = *p;
	}
	hex[h] = '\0';
	int n = snprintf(out, cap, "%s%s-%s", DMCRYPT_UUID_PREFIX, hex, name);
	if (n < 0 || (size_t)n >= cap || n > DMCRYPT_UUID_MAX)
		return -ENAMETOOLONG;
	return 0;
}
