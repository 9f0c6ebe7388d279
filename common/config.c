/*
 * The wrapd.conf parser: syntax and value types; the keys belong to the
 * modules (see common/config.h).
 */
#include "common/config.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

int config_parse_bool(const char *s, bool *out)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		if (!strcmp(s, t[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, f[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_duration_ms(const char *s, long *out)
{
	size_t n = strlen(s), digits = 0;
	while (digits < n && isdigit((unsigned char)s[digits]))
		digits++;
	if (!digits || digits > 9)
		return -EINVAL;
	char num[16];
	memcpy(num, s, digits);
	num[digits] = '\0';
	uint64_t v;
	if (parse_u64(num, &v) < 0)
		return -EINVAL;
	const char *unit = s + digits;
	uint64_t mult;
	if (!*unit || !strcmp(unit, "s"))
		mult = 1000;
	else if (!strcmp(unit, "ms"))
		mult = 1;
	else if (!strcmp(unit, "m"))
		mult = 60000;
	else if (!strcmp(unit, "h"))
		mult = 3600000;
	else
		return -EINVAL;
	if (v * mult > (uint64_t)LONG_MAX / 2)
		return -ERANGE;
	*out = (long)(v * mult);
	return 0;
}

static int set_str(char **field, const char *value)
{
	char *d = strdup(value);
	if (!d)
		return -ENOMEM;
	if (*field) {
		explicit_bzero(*field, strlen(*field));
		free(*field);
	}
	*field = d;
	return 0;
}

/* Checks one value and, when base is set, stores it. On failure writes a
 * reason (without location) into why. */
static int apply(const struct config_key *k, void *base, const char *value, bool from_file,
		 char *why, size_t whylen)
{
	void *field = base ? (char *)base + k->off : NULL;
	if (!*value && !(k->type == CONFIG_STRING && (k->flags & CONFIG_EMPTY_OK))) {
		snprintf(why, whylen, "empty value for '%s'", k->name);
		return -EINVAL;
	}
	for (const char *p = value; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			snprintf(why, whylen, "%s: control character in the value", k->name);
			return -EINVAL;
		}
	switch (k->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
		if (strlen(value) >= PATH_MAX) {
			snprintf(why, whylen, "value for '%s' is too long", k->name);
			return -EINVAL;
		}
		if (k->type == CONFIG_PATH && from_file && value[0] != '/') {
			snprintf(why, whylen, "%s: '%.200s' is not an absolute path", k->name, value);
			return -EINVAL;
		}
		if (k->check && !k->check(k->name, value, why, whylen))
			return -EINVAL;
		return field ? set_str(field, value) : 0;
	case CONFIG_BOOL: {
		bool b;
		if (config_parse_bool(value, &b) < 0) {
			snprintf(why, whylen, "%s: '%.200s' is not a boolean (true or false)", k->name,
				 value);
			return -EINVAL;
		}
		if (field)
			*(bool *)field = b;
		return 0;
	}
	case CONFIG_DURATION:
	case CONFIG_INT: {
		long long lo = k->min, hi = k->max, v = 0;
		bool bad = false;
		if (!lo && !hi)
			hi = k->type == CONFIG_INT ? INT_MAX : LONG_MAX / 2;
		if (k->type == CONFIG_DURATION) {
			long ms;
			if (config_parse_duration_ms(value, &ms) < 0 || ms <= 0) {
				snprintf(why, whylen,
					 "%s: '%.200s' is not a duration (seconds, or a number with ms, s, m, h)",
					 k->name, value);
				return -EINVAL;
			}
			v = ms;
		} else {
			uint64_t u;
			bad = parse_u64(value, &u) < 0 || u > (uint64_t)LLONG_MAX;
			v = bad ? 0 : (long long)u;
		}
		if (bad || v < lo || v > hi) {
			if (k->type == CONFIG_DURATION)
				snprintf(why, whylen, "%s: '%.200s' is not a duration from %lld ms to %lld ms",
					 k->name, value, lo, hi);
			else
				snprintf(why, whylen, "%s: '%.200s' is not a number from %lld to %lld",
					 k->name, value, lo, hi);
			return -EINVAL;
		}
		if (field && k->type == CONFIG_DURATION)
			*(long *)field = (long)v;
		else if (field)
			*(int *)field = (int)v;
		return 0;
	}
	case CONFIG_ENUM:
		for (size_t i = 0; k->names && k->names[i]; i++) {
			if (!strcmp(value, k->names[i])) {
				if (field)
					*(int *)field = (int)i;
				return 0;
			}
		}
		{
			size_t pos = (size_t)snprintf(why, whylen, "%s: '%.200s' is not one of ", k->name,
						      value);
			for (size_t i = 0; k->names && k->names[i] && pos < whylen; i++)
				pos += (size_t)snprintf(why + pos, whylen - pos, "%s%s", i ? ", " : "",
							k->names[i]);
		}
		return -EINVAL;
	}
	snprintf(why, whylen, "%s: unknown type", k->name);
	return -EINVAL;
}

static const struct config_key *find_key(const struct config_section *s, const char *name)
{
	for (size_t i = 0; i < s->nkeys; i++)
		if (!strcmp(s->keys[i].name, name))
			return &s->keys[i];
	return NULL;
}

int config_set(const struct config_section *s, const char *key, const char *value,
	       struct werr *err)
{
	const struct config_key *k = find_key(s, key);
	if (!k)
		return werr_set(err, -ENOENT, "unknown setting '%.64s'", key);
	char why[512];
	int rc = apply(k, s->base, value, false, why, sizeof(why));
	if (rc == -ENOMEM)
		return werr_set(err, rc, "out of memory");
	if (rc < 0)
		return werr_set(err, rc, "%s", why);
	return 0;
}

int config_apply_env(const struct config_section *s, const char *(*get)(const char *name),
		     struct werr *err)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		const struct config_key *k = &s->keys[i];
		if (!k->env)
			continue;
		const char *v = get(k->env);
		if (!v || !*v) /* as Vault's CLI: empty means unset */
			continue;
		char why[512];
		int rc = apply(k, s->base, v, false, why, sizeof(why));
		if (rc == -ENOMEM)
			return werr_set(err, rc, "out of memory");
		if (rc < 0)
			return werr_set(err, rc, "environment %s: %s", k->env, why);
	}
	return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Splits one line (NUL-terminated, in place) into key and value. Returns 0
 * with *key NULL for blank and comment lines. */
static int split_line(char *line, size_t ll, const char *path, size_t lineno, char **key,
		      char **value, struct werr *err)
{
	*key = *value = NULL;
	if (ll && line[ll - 1] == '\r')
		line[--ll] = '\0';
	for (size_t i = 0; i < ll; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			return werr_set(err, -EINVAL, "%s:%zu: control character in line", path, lineno);
	char *p = line;
	while (is_blank(*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	char *eq = strchr(p, '=');
	if (!eq)
		return werr_set(err, -EINVAL, "%s:%zu: expected 'key = value'", path, lineno);
	char *kend = eq;
	while (kend > p && is_blank(kend[-1]))
		kend--;
	*kend = '\0';
	if (!*p)
		return werr_set(err, -EINVAL, "%s:%zu: expected 'key = value'", path, lineno);
	for (char *k = p; *k; k++)
		if (!(islower((unsigned char)*k) || isdigit((unsigned char)*k) || *k == '_'))
			return werr_set(err, -EINVAL, "%s:%zu: bad key '%.64s'", path, lineno, p);
	char *v = eq + 1;
	while (is_blank(*v))
		v++;
	char *vend = v + strlen(v);
	while (vend > v && is_blank(vend[-1]))
		vend--;
	*vend = '\0';
	if (*v == '"') {
		/* Quoted: anything but '"' (no escapes), nothing after. */
		char *close = strchr(v + 1, '"');
		if (!close || close[1])
			return werr_set(err, -EINVAL,
					"%s:%zu: unterminated quote or text after the closing quote",
					path, lineno);
		*close = '\0';
		v++;
	} else if (strpbrk(v, " \t#\"")) {
		return werr_set(err, -EINVAL,
				"%s:%zu: unquoted value with a space, '#' or '\"' (comments must be on their own line; quote values that need spaces)",
				path, lineno);
	}
	*key = p;
	*value = v;
	return 0;
}

/* One key = value line: finds the key's section, refuses repeats, applies. */
static int parse_setting(const char *path, size_t lineno, const char *key, const char *value,
			 const struct config_section *const *sections, bool *seen,
			 struct werr *err)
{
	const struct config_key *k = NULL;
	const struct config_section *sec = NULL;
	size_t idx = 0;
	for (size_t s = 0; sections && sections[s] && !k; s++) {
		k = find_key(sections[s], key);
		if (k) {
			sec = sections[s];
			idx += (size_t)(k - sec->keys);
		} else {
			idx += sections[s]->nkeys;
		}
	}
	if (!k)
		return werr_set(err, -EINVAL, "%s:%zu: unknown key '%.64s'", path, lineno, key);
	if (k->flags & CONFIG_ENV_ONLY)
		return werr_set(err, -EINVAL, "%s:%zu: %s does not belong in a config file%s%s", path,
				lineno, k->name, k->hint ? "; " : "", k->hint ? k->hint : "");
	if (seen[idx])
		return werr_set(err, -EINVAL, "%s:%zu: '%s' set twice", path, lineno, key);
	seen[idx] = true;
	char why[512];
	int rc = apply(k, sec->base, value, true, why, sizeof(why));
	if (rc == -ENOMEM)
		return werr_set(err, rc, "out of memory");
	if (rc < 0)
		return werr_set(err, rc, "%s:%zu: %s", path, lineno, why);
	return 0;
}

int config_parse(const char *path, const char *buf, size_t len,
		 const struct config_section *const *sections, struct werr *err)
{
	if (len > CONFIG_MAX_BYTES)
		return werr_set(err, -EFBIG, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
	if (memchr(buf, '\0', len))
		return werr_set(err, -EINVAL, "%s: contains a NUL byte; not a text file", path);
	size_t total = 0;
	for (size_t s = 0; sections && sections[s]; s++)
		total += sections[s]->nkeys;
	_cleanup_free_ bool *seen = calloc(total + 1, sizeof(*seen));
	if (!seen)
		return werr_set(err, -ENOMEM, "out of memory");
	char line[CONFIG_MAX_LINE];
	int rc = 0;
	size_t lineno = 0;
	for (size_t pos = 0; pos < len && !rc;) {
		lineno++;
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		if (ll >= CONFIG_MAX_LINE) {
			rc = werr_set(err, -EINVAL, "%s:%zu: line longer than %d bytes", path, lineno,
				      CONFIG_MAX_LINE);
			break;
		}
		memcpy(line, buf + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);
		char *key, *value;
		rc = split_line(line, ll, path, lineno, &key, &value, err);
		if (!rc && key)
			rc = parse_setting(path, lineno, key, value, sections, seen, err);
	}
	explicit_bzero(line, sizeof(line));
	return rc;
}

int config_load(const char *path, bool missing_ok, const struct config_section *const *sections,
		struct werr *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT && missing_ok)
		return 0;
	if (fd < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return werr_set(err, -EINVAL, "%s: not a regular file", path);
	int rc = file_check_trusted(&st, path, err);
	if (rc < 0)
		return rc;
	rc = read_file_fd(fd, CONFIG_MAX_BYTES + 1, &buf, &len);
	if (rc == -EFBIG)
		return werr_set(err, rc, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
	if (rc == -EINVAL)
		return werr_set(err, rc, "%s: not a regular file", path);
	if (rc < 0)
		return werr_set(err, rc, "%s: %s", path, strerror(-rc));
	rc = config_parse(path, buf, len, sections, err);
	explicit_bzero(buf, len);
	return rc;
}

static bool is_string(const struct config_key *k)
{
	return k->type == CONFIG_STRING || k->type == CONFIG_PATH;
}

void config_section_free(const struct config_section *s)
{
	if (!s->base)
		return;
	for (size_t i = 0; i < s->nkeys; i++) {
		if (!is_string(&s->keys[i]))
			continue;
		char **f = (char **)((char *)s->base + s->keys[i].off);
		if (*f) {
			explicit_bzero(*f, strlen(*f));
			free(*f);
			*f = NULL;
		}
	}
}

int config_section_copy_strings(const struct config_section *dst, const struct config_section *src)
{
	int rc = 0;
	for (size_t i = 0; i < dst->nkeys; i++) {
		if (!is_string(&dst->keys[i]))
			continue;
		char **d = (char **)((char *)dst->base + dst->keys[i].off);
		const char *s = *(char **)((char *)src->base + dst->keys[i].off);
		*d = NULL;
		if (s && !(*d = strdup(s)))
			rc = -ENOMEM;
	}
	return rc;
}
