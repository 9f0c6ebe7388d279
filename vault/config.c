/*
 * Vault settings: defaults, then the wrapd config file, then the VAULT_*
 * environment (as Vault's own CLI reads it). The file is treated as hostile
 * input: bounded size and line length, one strict "key = value" per line,
 * unknown or repeated keys rejected, every error naming the file and line.
 */
#include "vault/vault_int.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

enum kind { K_STR, K_PATH, K_BOOL, K_DURATION, K_INT, K_AUTH, K_MOUNT, K_KEY, K_ADDR };

struct setting {
	const char *name;              /* in the config file */
	const char *env;               /* VAULT_* variable or NULL */
	enum kind kind;
	size_t off;                    /* offset in struct vault_config */
};

#define F(field) offsetof(struct vault_config, field)
static const struct setting settings[] = {
	{"vault_addr", "VAULT_ADDR", K_ADDR, F(addr)},
	{"vault_namespace", "VAULT_NAMESPACE", K_STR, F(namespace_)},
	{"vault_cacert", "VAULT_CACERT", K_PATH, F(cacert)},
	{"vault_capath", "VAULT_CAPATH", K_PATH, F(capath)},
	{"vault_client_cert", "VAULT_CLIENT_CERT", K_PATH, F(client_cert)},
	{"vault_client_key", "VAULT_CLIENT_KEY", K_PATH, F(client_key)},
	{"vault_tls_server_name", "VAULT_TLS_SERVER_NAME", K_STR, F(tls_server_name)},
	{"vault_skip_verify", "VAULT_SKIP_VERIFY", K_BOOL, F(skip_verify)},
	{"vault_client_timeout", "VAULT_CLIENT_TIMEOUT", K_DURATION, F(timeout_ms)},
	{"vault_connect_timeout", NULL, K_DURATION, F(connect_timeout_ms)},
	{"vault_max_retries", "VAULT_MAX_RETRIES", K_INT, F(max_retries)},
	{"vault_deadline", NULL, K_DURATION, F(deadline_ms)},
	{"vault_mount", NULL, K_MOUNT, F(mount)},
	{"vault_key", NULL, K_KEY, F(key)},
	{"vault_auth", NULL, K_AUTH, F(auth)},
	{"vault_token", "VAULT_TOKEN", K_STR, F(token)},
	{"vault_token_file", NULL, K_PATH, F(token_file)},
	{"vault_auth_mount", NULL, K_MOUNT, F(auth_mount)},
	{"vault_role", NULL, K_STR, F(role)},
	{"vault_jwt_file", NULL, K_PATH, F(jwt_file)},
	{"vault_role_id", NULL, K_STR, F(role_id)},
	{"vault_secret_id_file", NULL, K_PATH, F(secret_id_file)},
};
#undef F

static const struct setting *find_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (!strcmp(settings[i].name, name))
			return &settings[i];
	return NULL;
}

int vault_parse_bool(const char *s, bool *out)
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

int vault_parse_duration_ms(const char *s, long *out)
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

bool vault_valid_path_part(const char *s, bool allow_slash)
{
	if (!*s || strlen(s) > 128 || *s == '/' || s[strlen(s) - 1] == '/')
		return false;
	for (const char *p = s; *p; p++) {
		if (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.')
			continue;
		if (*p == '/' && allow_slash && p[1] != '/')
			continue;
		return false;
	}
	/* No "." or ".." segments. */
	for (const char *p = s; *p;) {
		size_t seg = strcspn(p, "/");
		if ((seg == 1 && p[0] == '.') || (seg == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += seg;
		if (*p)
			p++;
	}
	return true;
}

const char *vault_auth_method_name(enum vault_auth_method m)
{
	switch (m) {
	case VAULT_AUTH_TOKEN: return "token";
	case VAULT_AUTH_KUBERNETES: return "kubernetes";
	case VAULT_AUTH_APPROLE: return "approle";
	}
	return "?";
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

/* Sets one value; on failure writes a reason (without location) into why. */
static int apply(struct vault_config *cfg, const struct setting *s, const char *value,
		 char *why, size_t whylen)
{
	void *field = (char *)cfg + s->off;
	if (!*value && s->kind != K_STR) {
		snprintf(why, whylen, "empty value for '%s'", s->name);
		return -EINVAL;
	}
	switch (s->kind) {
	case K_ADDR:
		if (strncmp(value, "https://", 8) && strncmp(value, "http://", 7)) {
			snprintf(why, whylen, "%s must start with https:// or http://", s->name);
			return -EINVAL;
		}
		if (strlen(value) > 1024 || strpbrk(value, " \t?#")) {
			snprintf(why, whylen, "%s is not a plain URL", s->name);
			return -EINVAL;
		}
		return set_str(field, value);
	case K_STR:
	case K_PATH:
		if (strlen(value) > PATH_MAX) {
			snprintf(why, whylen, "value for '%s' is too long", s->name);
			return -EINVAL;
		}
		return set_str(field, value);
	case K_MOUNT:
	case K_KEY:
		if (!vault_valid_path_part(value, s->kind == K_MOUNT)) {
			snprintf(why, whylen,
				 "%s '%s' may hold only letters, digits, '-', '_', '.'%s", s->name,
				 value, s->kind == K_MOUNT ? " and inner '/'" : "");
			return -EINVAL;
		}
		return set_str(field, value);
	case K_BOOL:
		if (vault_parse_bool(value, field) < 0) {
			snprintf(why, whylen, "%s: '%s' is not a boolean (true or false)", s->name,
				 value);
			return -EINVAL;
		}
		return 0;
	case K_DURATION: {
		long v;
		if (vault_parse_duration_ms(value, &v) < 0 || v <= 0) {
			snprintf(why, whylen,
				 "%s: '%s' is not a duration (seconds, or a number with ms, s, m, h)",
				 s->name, value);
			return -EINVAL;
		}
		*(long *)field = v;
		return 0;
	}
	case K_INT: {
		uint64_t v;
		if (parse_u64(value, &v) < 0 || v > 100) {
			snprintf(why, whylen, "%s: '%s' is not a number from 0 to 100", s->name, value);
			return -EINVAL;
		}
		*(int *)field = (int)v;
		return 0;
	}
	case K_AUTH:
		if (!strcmp(value, "token"))
			cfg->auth = VAULT_AUTH_TOKEN;
		else if (!strcmp(value, "kubernetes"))
			cfg->auth = VAULT_AUTH_KUBERNETES;
		else if (!strcmp(value, "approle"))
			cfg->auth = VAULT_AUTH_APPROLE;
		else {
			snprintf(why, whylen, "%s: '%s' is not one of token, kubernetes, approle",
				 s->name, value);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

void vault_config_defaults(struct vault_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = 60000;
	cfg->connect_timeout_ms = 10000;
	cfg->max_retries = 2;
	cfg->deadline_ms = VAULT_DEFAULT_DEADLINE_MS;
	cfg->auth = VAULT_AUTH_TOKEN;
}

int vault_config_set(struct vault_config *cfg, const char *key, const char *value,
		     struct werr *err)
{
	const struct setting *s = find_setting(key);
	if (!s)
		return werr_set(err, -EINVAL, "unknown Vault setting '%s'", key);
	char why[512];
	int rc = apply(cfg, s, value, why, sizeof(why));
	if (rc == -ENOMEM)
		return werr_set(err, rc, "out of memory");
	if (rc < 0)
		return werr_set(err, rc, "%s", why);
	return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

int vault_config_parse(struct vault_config *cfg, const char *path, const char *buf, size_t len,
		       struct werr *err)
{
	bool seen[ARRAY_SIZE(settings)] = {false};
	if (len > VAULT_CONFIG_MAX_BYTES)
		return werr_set(err, -EFBIG, "%s: larger than %d bytes", path, VAULT_CONFIG_MAX_BYTES);
	if (memchr(buf, '\0', len))
		return werr_set(err, -EINVAL, "%s: contains a NUL byte; not a text file", path);
	size_t lineno = 0;
	for (size_t pos = 0; pos < len;) {
		lineno++;
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		if (ll >= VAULT_CONFIG_MAX_LINE)
			return werr_set(err, -EINVAL, "%s:%zu: line longer than %d bytes", path,
					lineno, VAULT_CONFIG_MAX_LINE);
		char line[VAULT_CONFIG_MAX_LINE];
		memcpy(line, buf + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);
		if (ll && line[ll - 1] == '\r')
			line[--ll] = '\0';
		for (size_t i = 0; i < ll; i++)
			if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
				return werr_set(err, -EINVAL, "%s:%zu: control character in line",
						path, lineno);
		char *p = line;
		while (is_blank(*p))
			p++;
		if (!*p || *p == '#')
			continue;
		char *eq = strchr(p, '=');
		if (!eq)
			return werr_set(err, -EINVAL, "%s:%zu: expected 'key = value'", path, lineno);
		char *kend = eq;
		while (kend > p && is_blank(kend[-1]))
			kend--;
		*kend = '\0';
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
		const struct setting *s = find_setting(p);
		if (!s)
			return werr_set(err, -EINVAL, "%s:%zu: unknown key '%.64s'", path, lineno, p);
		if (s->off == offsetof(struct vault_config, token))
			return werr_set(err, -EINVAL,
					"%s:%zu: vault_token does not belong in a config file; use vault_token_file or VAULT_TOKEN",
					path, lineno);
		size_t idx = (size_t)(s - settings);
		if (seen[idx])
			return werr_set(err, -EINVAL, "%s:%zu: '%s' set twice", path, lineno, p);
		seen[idx] = true;
		char why[512];
		int rc = apply(cfg, s, v, why, sizeof(why));
		if (rc == -ENOMEM)
			return werr_set(err, rc, "out of memory");
		if (rc < 0)
			return werr_set(err, rc, "%s:%zu: %s", path, lineno, why);
	}
	return 0;
}

int vault_config_apply_env(struct vault_config *cfg, const char *(*get)(const char *name),
			   struct werr *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		const struct setting *s = &settings[i];
		if (!s->env)
			continue;
		const char *v = get(s->env);
		if (!v || !*v) /* Vault's CLI treats empty as unset */
			continue;
		char why[512];
		int rc = apply(cfg, s, v, why, sizeof(why));
		if (rc == -ENOMEM)
			return werr_set(err, rc, "out of memory");
		if (rc < 0)
			return werr_set(err, rc, "environment %s: %s", s->env, why);
	}
	return 0;
}

int vault_config_finish(struct vault_config *cfg, struct werr *err)
{
	int rc = 0;
	if (!cfg->addr)
		rc = set_str(&cfg->addr, VAULT_DEFAULT_ADDR);
	if (!rc && !cfg->mount)
		rc = set_str(&cfg->mount, VAULT_DEFAULT_MOUNT);
	if (!rc && !cfg->key)
		rc = set_str(&cfg->key, VAULT_DEFAULT_KEY);
	if (rc < 0)
		return werr_set(err, rc, "out of memory");
	/* Strip trailing slashes from the address: paths are appended as /v1/... */
	size_t al = strlen(cfg->addr);
	while (al > 8 && cfg->addr[al - 1] == '/')
		cfg->addr[--al] = '\0';
	if (cfg->namespace_ && !*cfg->namespace_) {
		free(cfg->namespace_);
		cfg->namespace_ = NULL;
	}
	if (!cfg->client_cert != !cfg->client_key)
		return werr_set(err, -EINVAL,
				"Vault client certificate and key go together: set both VAULT_CLIENT_CERT and VAULT_CLIENT_KEY (or vault_client_cert and vault_client_key), or neither");
	switch (cfg->auth) {
	case VAULT_AUTH_TOKEN:
		break;
	case VAULT_AUTH_KUBERNETES:
		if (!cfg->role)
			return werr_set(err, -EINVAL, "vault_auth = kubernetes needs vault_role");
		if (!cfg->jwt_file && set_str(&cfg->jwt_file, VAULT_DEFAULT_JWT_FILE) < 0)
			return werr_set(err, -ENOMEM, "out of memory");
		break;
	case VAULT_AUTH_APPROLE:
		if (!cfg->role_id || !cfg->secret_id_file)
			return werr_set(err, -EINVAL,
					"vault_auth = approle needs vault_role_id and vault_secret_id_file");
		break;
	}
	if (cfg->auth != VAULT_AUTH_TOKEN) {
		const char *def = cfg->auth == VAULT_AUTH_KUBERNETES ? "auth/kubernetes" : "auth/approle";
		if (!cfg->auth_mount) {
			if (set_str(&cfg->auth_mount, def) < 0)
				return werr_set(err, -ENOMEM, "out of memory");
		} else if (strncmp(cfg->auth_mount, "auth/", 5)) {
			/* Accept "kubernetes" as well as "auth/kubernetes". */
			size_t n = strlen(cfg->auth_mount) + 6;
			char *m = malloc(n);
			if (!m)
				return werr_set(err, -ENOMEM, "out of memory");
			snprintf(m, n, "auth/%s", cfg->auth_mount);
			free(cfg->auth_mount);
			cfg->auth_mount = m;
		}
	}
	if (cfg->max_retries < 0)
		cfg->max_retries = 0;
	return 0;
}

static const char *env_get(const char *name) { return getenv(name); }

int vault_config_load(struct vault_config *cfg, const char *config_path, struct werr *err)
{
	vault_config_defaults(cfg);
	const char *path = config_path ? config_path : VAULT_DEFAULT_CONFIG;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int rc = read_file(path, VAULT_CONFIG_MAX_BYTES + 1, &buf, &len);
	if (rc == -ENOENT && !config_path) {
		rc = 0; /* the default file is optional */
	} else if (rc == -EFBIG) {
		rc = werr_set(err, rc, "%s: larger than %d bytes", path, VAULT_CONFIG_MAX_BYTES);
	} else if (rc == -EINVAL) {
		rc = werr_set(err, rc, "%s: not a regular file", path);
	} else if (rc < 0) {
		rc = werr_set(err, rc, "%s: %s", path, strerror(-rc));
	} else {
		rc = vault_config_parse(cfg, path, buf, len, err);
	}
	if (buf) {
		explicit_bzero(buf, len);
	}
	if (!rc)
		rc = vault_config_apply_env(cfg, env_get, err);
	if (!rc)
		rc = vault_config_finish(cfg, err);
	if (rc < 0)
		vault_config_free(cfg);
	return rc;
}

static void free_str(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void vault_config_free(struct vault_config *cfg)
{
	if (!cfg)
		return;
	char **strs[] = {&cfg->addr, &cfg->namespace_, &cfg->cacert, &cfg->capath,
			 &cfg->client_cert, &cfg->client_key, &cfg->tls_server_name,
			 &cfg->mount, &cfg->key, &cfg->token, &cfg->token_file,
			 &cfg->auth_mount, &cfg->role, &cfg->jwt_file, &cfg->role_id,
			 &cfg->secret_id_file};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free_str(strs[i]);
}

int vault_config_copy(struct vault_config *dst, const struct vault_config *src)
{
	*dst = *src;
	char **strs[] = {&dst->addr, &dst->namespace_, &dst->cacert, &dst->capath,
			 &dst->client_cert, &dst->client_key, &dst->tls_server_name,
			 &dst->mount, &dst->key, &dst->token, &dst->token_file,
			 &dst->auth_mount, &dst->role, &dst->jwt_file, &dst->role_id,
			 &dst->secret_id_file};
	const char *orig[ARRAY_SIZE(strs)];
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		orig[i] = *strs[i];
		*strs[i] = NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		if (orig[i] && !(*strs[i] = strdup(orig[i]))) {
			vault_config_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}
