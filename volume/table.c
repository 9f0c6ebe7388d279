/*
 * The host volume table (/etc/wrapd/volumes): crypttab-like, one volume per
 * line. The file may be written by anyone with root, but it is parsed as
 * hostile input: every byte is checked and every error names file and line.
 *
 *   # name   device                                      options
 *   data     /dev/disk/by-id/nvme-foo-part2              discard,no-workqueue
 *   scratch  UUID=0b5e0a4c-3f1e-4d7b-9c55-2a7d3f1e4c10   read-only
 *   img      /var/lib/images/a.img                       header=/etc/wrapd/a.hdr,noauto
 */
#include "volume/volume.h"

#include "dm/dm.h"
#include "format/format.h"

#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>

#define TABLE_MAX_BYTES (1u << 20)
#define TABLE_MAX_LINE 4096

static bool path_valid(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n >= 4096 || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

void volume_table_free(struct volume_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		free(t->v[i].device);
		free(t->v[i].header);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static int parse_options(const char *src, unsigned lineno, char *opts,
			 struct volume_entry *e, struct werr *err)
{
	bool saw_wq = false;
	if (!strcmp(opts, "-") || !strcmp(opts, "defaults"))
		return 0;
	char *save = NULL;
	size_t len = strlen(opts);
	if (opts[0] == ',' || opts[len - 1] == ',' || strstr(opts, ",,"))
		return werr_set(err, -EINVAL, "%s:%u: empty option in '%s'; separate options with single commas",
				src, lineno, opts);
	for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "read-only") || !strcmp(o, "ro")) {
			e->flags |= VOLUME_READ_ONLY;
		} else if (!strcmp(o, "discard") || !strcmp(o, "allow-discards")) {
			e->flags |= VOLUME_ALLOW_DISCARDS;
		} else if (!strcmp(o, "no-workqueue") || !strcmp(o, "workqueue")) {
			if (saw_wq)
				return werr_set(err, -EINVAL, "%s:%u: 'workqueue' and 'no-workqueue' given twice; keep one",
						src, lineno);
			saw_wq = true;
			e->flags |= o[0] == 'n' ? VOLUME_NO_WORKQUEUE : VOLUME_WORKQUEUE;
		} else if (!strcmp(o, "noauto")) {
			e->noauto = true;
		} else if (!strncmp(o, "header=", 7)) {
			if (e->header)
				return werr_set(err, -EINVAL, "%s:%u: 'header=' given twice", src, lineno);
			if (!path_valid(o + 7))
				return werr_set(err, -EINVAL, "%s:%u: header '%s' is not an absolute path",
						src, lineno, o + 7);
			e->header = strdup(o + 7);
			if (!e->header)
				return -ENOMEM;
		} else {
			return werr_set(err, -EINVAL,
					"%s:%u: unknown option '%.64s'; known: read-only, discard, no-workqueue, workqueue, header=PATH, noauto",
					src, lineno, o);
		}
	}
	return 0;
}

int volume_table_parse(const char *text, size_t len, const char *src,
		       struct volume_table *out, struct werr *err)
{
	struct volume_table t = {0};
	int r = 0;
	unsigned lineno = 0;
	size_t pos = 0;
	_cleanup_free_ char *line = malloc(TABLE_MAX_LINE + 1);
	if (!line)
		return -ENOMEM;

	while (pos < len) {
		lineno++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (ll > TABLE_MAX_LINE) {
			r = werr_set(err, -EINVAL, "%s:%u: line longer than %u bytes", src, lineno,
				     TABLE_MAX_LINE);
			goto fail;
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);
		for (size_t i = 0; i < ll; i++) {
			unsigned char c = (unsigned char)line[i];
			if (c == '\0' || (c < 0x20 && c != '\t' && c != '\r') || c >= 0x7f) {
				r = werr_set(err, -EINVAL,
					     "%s:%u: byte 0x%02x at column %zu is not printable ASCII",
					     src, lineno, c, i + 1);
				goto fail;
			}
		}
		if (ll && line[ll - 1] == '\r')
			line[--ll] = '\0';

		/* Split into at most 3 whitespace-separated fields; '#' starts a
		 * comment only at the start of a field. */
		char *f[4] = {0};
		int nf = 0;
		char *p = line;
		for (;;) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (!*p || *p == '#')
				break;
			if (nf == 3) {
				r = werr_set(err, -EINVAL,
					     "%s:%u: too many fields; expected NAME DEVICE [OPTIONS]",
					     src, lineno);
				goto fail;
			}
			f[nf++] = p;
			while (*p && *p != ' ' && *p != '\t')
				p++;
			if (*p)
				*p++ = '\0';
		}
		if (nf == 0)
			continue;
		if (nf < 2) {
			r = werr_set(err, -EINVAL, "%s:%u: missing device; expected NAME DEVICE [OPTIONS]",
				     src, lineno);
			goto fail;
		}
		if (!dmcrypt_name_valid(f[0])) {
			r = werr_set(err, -EINVAL,
				     "%s:%u: bad volume name '%.64s'; use 1-%d of [A-Za-z0-9_.+@-], not starting with '-'",
				     src, lineno, f[0], VOLUME_NAME_MAX);
			goto fail;
		}
		for (size_t i = 0; i < t.n; i++) {
			if (!strcmp(t.v[i].name, f[0])) {
				r = werr_set(err, -EINVAL, "%s:%u: volume '%s' already defined on line %u",
					     src, lineno, f[0], t.v[i].line);
				goto fail;
			}
		}
		if (!strncmp(f[1], "UUID=", 5)) {
			if (luks2_uuid_canon(f[1] + 5, NULL) < 0) {
				r = werr_set(err, -EINVAL,
					     "%s:%u: '%.64s' is not UUID= followed by a 36-character UUID",
					     src, lineno, f[1]);
				goto fail;
			}
		} else if (!path_valid(f[1])) {
			r = werr_set(err, -EINVAL,
				     "%s:%u: device '%.64s' must be an absolute path or UUID=<uuid>",
				     src, lineno, f[1]);
			goto fail;
		}

		struct volume_entry *nv = realloc(t.v, (t.n + 1) * sizeof(*nv));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		t.v = nv;
		struct volume_entry *e = &t.v[t.n];
		memset(e, 0, sizeof(*e));
		t.n++;
		e->line = lineno;
		e->name = strdup(f[0]);
		e->device = strdup(f[1]);
		if (!e->name || !e->device) {
			r = -ENOMEM;
			goto fail;
		}
		if (!strncmp(f[1], "UUID=", 5))
			for (char *c = e->device + 5; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		if (nf == 3) {
			r = parse_options(src, lineno, f[2], e, err);
			if (r < 0)
				goto fail;
		}
	}
	*out = t;
	return 0;
fail:
	volume_table_free(&t);
	return r;
}

int volume_table_load(const char *path, struct volume_table *out, struct werr *err)
{
	if (!path)
		path = VOLUME_TABLE_DEFAULT;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			return werr_set(err, -ELOOP, "%s: is a symlink; point --table at the real file", path);
		return werr_set(err, -e, "%s: cannot open the volume table: %s; create it or pass --table FILE",
				path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return werr_set(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return werr_set(err, -EINVAL, "%s: not a regular file", path);
	int r = file_check_trusted(&st, path, err);
	if (r < 0)
		return r;
	if ((uint64_t)st.st_size > TABLE_MAX_BYTES)
		return werr_set(err, -EFBIG, "%s: larger than %u bytes", path, TABLE_MAX_BYTES);
	size_t cap = (size_t)st.st_size + 1, got = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (got == cap)
			return werr_set(err, -EFBIG, "%s: grew while being read", path);
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return werr_set(err, -errno, "%s: read failed: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return volume_table_parse(buf, got, path, out, err);
}

const struct volume_entry *volume_table_find(const struct volume_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return &t->v[i];
	return NULL;
}

static const struct config_key volume_keys[] = {
	{.name = "volume_table", .type = CONFIG_PATH, .off = offsetof(struct volume_settings, table)},
};

struct config_section volume_config_section(struct volume_settings *s)
{
	return (struct config_section){volume_keys, ARRAY_SIZE(volume_keys), s};
}

void volume_settings_free(struct volume_settings *s)
{
	struct config_section sec = volume_config_section(s);
	config_section_free(&sec);
}
