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

#define K(n, t, field, e, ...) \
	{.name = n, .type = t, .off = offsetof(struct vault_config, field), .env = e, __VA_ARGS__}
static bool check_addr(const char *key, const char *value, char *why, size_t whylen);
static bool check_mount(const char *key, const char *value, char *why, size_t whylen);
static bool check_key(const char *key, const char *value, char *why, size_t whylen);
static const char *const auth_names[] = {"token", "kubernetes", "approle", NULL};

/* The vault section of wrapd.conf. */
static const struct config_key vault_keys[] = {
	K("vault_addr", CONFIG_STRING, addr, "VAULT_ADDR", .check = check_addr),
	K("vault_namespace", CONFIG_STRING, namespace_, "VAULT_NAMESPACE", .flags = CONFIG_EMPTY_OK),
	K("vault_cacert", CONFIG_PATH, cacert, "VAULT_CACERT"),
	K("vault_capath", CONFIG_PATH, capath, "VAULT_CAPATH"),
	K("vault_client_cert", CONFIG_PATH, client_cert, "VAULT_CLIENT_CERT"),
	K("vault_client_key", CONFIG_PATH, client_key, "VAULT_CLIENT_KEY"),
	K("vault_tls_server_name", CONFIG_STRING, tls_server_name, "VAULT_TLS_SERVER_NAME", .flags = CONFIG_EMPTY_OK),
	K("vault_skip_verify", CONFIG_BOOL, skip_verify, "VAULT_SKIP_VERIFY"),
	K("vault_client_timeout", CONFIG_DURATION, timeout_ms, "VAULT_CLIENT_TIMEOUT"),
	K("vault_connect_timeout", CONFIG_DURATION, connect_timeout_ms, NULL),
	K("vault_max_retries", CONFIG_INT, max_retries, "VAULT_MAX_RETRIES", .min = 0, .max = 100),
	K("vault_deadline", CONFIG_DURATION, deadline_ms, NULL),
	K("vault_mount", CONFIG_STRING, mount, NULL, .check = check_mount),
	K("vault_key", CONFIG_STRING, key, NULL, .check = check_key),
	K("vault_auth", CONFIG_ENUM, auth, NULL, .names = auth_names),
	K("vault_token", CONFIG_STRING, token, "VAULT_TOKEN", .flags = CONFIG_ENV_ONLY | CONFIG_EMPTY_OK,
	 .hint = "use vault_token_file or VAULT_TOKEN"),
	K("vault_token_file", CONFIG_PATH, token_file, NULL),
	K("vault_auth_mount", CONFIG_STRING, auth_mount, NULL, .check = check_mount),
	K("vault_role", CONFIG_STRING, role, NULL, .flags = CONFIG_EMPTY_OK),
	K("vault_jwt_file", CONFIG_PATH, jwt_file, NULL),
	K("vault_role_id", CONFIG_STRING, role_id, NULL, .flags = CONFIG_EMPTY_OK),
	K("vault_secret_id_file", CONFIG_PATH, secret_id_file, NULL),
};
#undef K
_Static_assert(sizeof(enum vault_auth_method) == sizeof(int), "vault_auth is stored as an int");

struct config_section vault_config_section(struct vault_config *cfg)
{
	return (struct config_section){vault_keys, ARRAY_SIZE(vault_keys), cfg};
}

int vault_parse_bool(const char *s, bool *out)
{
	return config_parse_bool(s, out);
}

int vault_parse_duration_ms(const char *s, long *out)
{
	return config_parse_duration_ms(s, out);
}

static bool check_addr(const char *key, const char *value, char *why, size_t whylen)
{
	if (strncmp(value, "https://", 8) && strncmp(value, "http://", 7)) {
		snprintf(why, whylen, "%s must start with https:// or http://", key);
		return false;
	}
	if (strlen(value) > 1024 || strpbrk(value, " \t?#")) {
		snprintf(why, whylen, "%s is not a plain URL", key);
		return false;
	}
	return true;
}

static bool check_path_part(const char *key, const char *value, bool mount, char *why,
			    size_t whylen)
{
	if (vault_valid_path_part(value, mount))
		return true;
	snprintf(why, whylen, "%s '%.200s' may hold only letters, digits, '-', '_', '.'%s", key,
		 value, mount ? " and inner '/'" : "");
	return false;
}

static bool check_mount(const char *key, const char *value, char *why, size_t whylen)
{
	return check_path_part(key, value, true, why, whylen);
}

static bool check_key(const char *key, const char *value, char *why, size_t whylen)
{
	return check_path_part(key, value, false, why, whylen);
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
	free(*field);
	*field = d;
	return 0;
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
	struct config_section sec = vault_config_section(cfg);
	int rc = config_set(&sec, key, value, err);
	if (rc == -ENOENT)
		return werr_set(err, -EINVAL, "unknown Vault setting '%s'", key);
	return rc;
}

int vault_config_parse(struct vault_config *cfg, const char *path, const char *buf, size_t len,
		       struct werr *err)
{
	struct config_section sec = vault_config_section(cfg);
	const struct config_section *const sections[] = {&sec, NULL};
	return config_parse(path, buf, len, sections, err);
}

int vault_config_apply_env(struct vault_config *cfg, const char *(*get)(const char *name),
			   struct werr *err)
{
	struct config_section sec = vault_config_section(cfg);
	return config_apply_env(&sec, get, err);
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

int vault_config_load_ex(struct vault_config *cfg, const char *config_path,
			 const struct config_section *const *others, struct werr *err)
{
	vault_config_defaults(cfg);
	struct config_section sec = vault_config_section(cfg);
	const struct config_section *sections[16] = {&sec};
	size_t n = 1;
	for (; others && others[n - 1]; n++) {
		if (n + 1 >= ARRAY_SIZE(sections))
			return werr_set(err, -E2BIG, "too many config sections");
		sections[n] = others[n - 1];
	}
	sections[n] = NULL;
	const char *path = config_path ? config_path : VAULT_DEFAULT_CONFIG;
	int rc = config_load(path, !config_path, sections, err);
	if (!rc)
		rc = vault_config_apply_env(cfg, env_get, err);
	if (!rc)
		rc = vault_config_finish(cfg, err);
	if (rc < 0)
		vault_config_free(cfg);
	return rc;
}

int vault_config_load(struct vault_config *cfg, const char *config_path, struct werr *err)
{
	return vault_config_load_ex(cfg, config_path, NULL, err);
}

void vault_config_free(struct vault_config *cfg)
{
	if (!cfg)
		return;
	struct config_section sec = vault_config_section(cfg);
	config_section_free(&sec);
}

int vault_config_copy(struct vault_config *dst, const struct vault_config *src)
{
	*dst = *src;
	struct config_section d = vault_config_section(dst);
	struct config_section s = vault_config_section((struct vault_config *)src);
	int rc = config_section_copy_strings(&d, &s);
	if (rc < 0)
		vault_config_free(dst);
	return rc;
}
