/*
 * A wrapd mapping's live dm table, described for status (volume_status_list)
 * and close: pure text parsing, no dm, no I/O (unit-tested on the shapes
 * `dmsetup table` prints in the VM).
 *
 * A wrapd mapping is one crypt target over the data area, except in the
 * middle of an online rekey (volume/online.c), when it is split:
 *     [0,a)     crypt, new key   ":64:logon:wrapd:<uuid>-d<new digest>"
 *     [a,b)     linear over the zone device (the zone being converted)
 *     [b,size)  crypt, old key   ":64:logon:wrapd:<uuid>-d<old digest>"
 * (any of the three may be absent; opened in the middle it is [new | old]).
 * The whole size is the end of the last target; the new key is the one of
 * the crypt target at 0 when another target follows, the old key the one of
 * the crypt target that reaches the end when another precedes it.
 */
#include "volume/internal.h"

static int parse_crypt_opts(const char *p, struct crypt_line *c)
{
	unsigned nopt = 0;
	int u2 = 0;
	if (sscanf(p, " %u%n", &nopt, &u2) != 1)
		return 0;
	p += u2;
	size_t o = 0;
	for (unsigned i = 0; i < nopt; i++) {
		char opt[64];
		if (sscanf(p, " %63s%n", opt, &u2) != 1)
			break;
		p += u2;
		if (!strncmp(opt, "sector_size:", 12))
			c->sector_size = (uint32_t)strtoul(opt + 12, NULL, 10);
		int w = snprintf(c->flags + o, sizeof(c->flags) - o, "%s%s", o ? " " : "", opt);
		if (w > 0 && (size_t)w < sizeof(c->flags) - o)
			o += (size_t)w;
	}
	return 0;
}

int dm_crypt_line_parse(const char *line, struct crypt_line *c)
{
	memset(c, 0, sizeof(*c));
	unsigned long long start, len, iv, off;
	int used = 0;
	if (!line || sscanf(line, "%llu %llu crypt %63s %159s %llu %u:%u %llu%n", &start, &len,
			    c->cipher, c->key, &iv, &c->maj, &c->min, &off, &used) < 8)
		return -EINVAL;
	c->start = start;
	c->length = len;
	c->iv_offset = iv;
	c->offset = off;
	c->sector_size = 512;
	/* Only this line's options. */
	const char *eol = strchr(line + used, '\n');
	char rest[512];
	size_t rl = eol ? (size_t)(eol - (line + used)) : strlen(line + used);
	if (rl >= sizeof(rest))
		rl = sizeof(rest) - 1;
	memcpy(rest, line + used, rl);
	rest[rl] = '\0';
	return parse_crypt_opts(rest, c);
}

int dm_crypt_line_first(const char *table, struct crypt_line *c)
{
	for (const char *p = table; p && *p;) {
		if (dm_crypt_line_parse(p, c) == 0)
			return 0;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return -EINVAL;
}

bool dm_key_is_wrapd(const char *key)
{
	/* ":64:logon:wrapd:<uuid>" or, split, ":64:logon:wrapd:<uuid>-d<n>" */
	const char *p = key[0] == ':' ? strchr(key + 1, ':') : NULL;
	return p && !strncmp(p, ":logon:wrapd:", 13);
}

int dm_key_uuid(const char *key, char uuid[37])
{
	uuid[0] = '\0';
	const char *u = strstr(key, ":logon:wrapd:");
	if (!u || strlen(u + 13) < 36)
		return -EINVAL;
	snprintf(uuid, 37, "%.36s", u + 13);
	return 0;
}

int dm_table_describe(const char *table, struct table_desc *d)
{
	memset(d, 0, sizeof(*d));
	struct crypt_line first_new = {0}, last_old = {0};
	bool have_new = false, have_old = false, have_crypt = false;
	uint64_t end = 0;
	for (const char *p = table; p && *p;) {
		unsigned long long st, len;
		char type[16];
		if (sscanf(p, "%llu %llu %15s", &st, &len, type) != 3 || st != end || !len)
			return -EINVAL; /* targets cover [0,size) in order, without holes */
		struct crypt_line c;
		if (!strcmp(type, "crypt")) {
			if (dm_crypt_line_parse(p, &c) < 0)
				return -EINVAL;
			if (!have_crypt) {
				d->first = c;
				have_crypt = true;
			}
			if (st == 0) {
				first_new = c;
				have_new = true;
			}
			last_old = c;
			have_old = true;
		} else if (!strcmp(type, "linear") && !d->zone_len) {
			d->zone_start = st * 512;
			d->zone_len = len * 512;
		} else {
			return -EINVAL;
		}
		d->targets++;
		end = st + len;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	if (!have_crypt || d->targets > 3)
		return -EINVAL;
	d->size = end * 512;
	d->data_offset = d->first.offset - d->first.start;
	if (d->targets == 1) {
		snprintf(d->key_ref, sizeof(d->key_ref), "%s", d->first.key);
		return 0;
	}
	d->split = true;
	/* [0,a): new, when something follows it. */
	if (have_new && first_new.start + first_new.length < end) {
		snprintf(d->key_ref_new, sizeof(d->key_ref_new), "%s", first_new.key);
		d->new_end = first_new.length * 512;
	} else {
		have_new = false;
	}
	/* [b,size): old, when something precedes it. */
	d->old_in_table = have_old && last_old.start > 0 && last_old.start + last_old.length == end;
	/* Without it (the last zone held) the old key is only in the zone
	 * device; key_ref then names the new one, which says the volume. */
	snprintf(d->key_ref, sizeof(d->key_ref), "%s", d->old_in_table ? last_old.key : d->first.key);
	/* Both crypt parts belong to one volume. */
	char u1[37], u2[37];
	if (have_new && (dm_key_uuid(d->key_ref, u1) < 0 || dm_key_uuid(d->key_ref_new, u2) < 0 ||
			 strcmp(u1, u2)))
		return -EINVAL;
	return 0;
}
