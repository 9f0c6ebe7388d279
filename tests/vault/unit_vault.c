/* Unit tests for vault/: the pure parts (no network). */
#include "tests/lib/unit.h"

#include "vault/vault_int.h"

#include <fcntl.h>
#include <sys/stat.h>

static int parse(struct vault_config *cfg, const char *text, struct werr *err)
{
	vault_config_defaults(cfg);
	werr_clear(err);
	return vault_config_parse(cfg, "/etc/wrapd/wrapd.conf", text, strlen(text), err);
}

static void config_good_file(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct werr err = {0};
	const char *text =
		"# wrapd settings\n"
		"\n"
		"   # indented comment\n"
		"vault_addr = https://vault.example:8200/\n"
		"vault_namespace=team-a\n"
		"vault_auth = approle\r\n"
		"vault_role_id = \"1234-abcd\"\n"
		"vault_secret_id_file = /etc/wrapd/secret-id\n"
		"vault_mount = kms/transit\n"
		"vault_key = wrapd-prod\n"
		"vault_client_timeout = 1500ms\n"
		"vault_max_retries = 5\n"
		"vault_skip_verify = false\n"
		"vault_deadline = 2m\n"
		"vault_auth_mount = approle-nodes";
	assert_int_equal(parse(&cfg, text, &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), 0);
	assert_string_equal(cfg.addr, "https://vault.example:8200");
	assert_string_equal(cfg.namespace_, "team-a");
	assert_int_equal(cfg.auth, VAULT_AUTH_APPROLE);
	assert_string_equal(cfg.role_id, "1234-abcd");
	assert_string_equal(cfg.mount, "kms/transit");
	assert_string_equal(cfg.key, "wrapd-prod");
	assert_int_equal(cfg.timeout_ms, 1500);
	assert_int_equal(cfg.max_retries, 5);
	assert_int_equal(cfg.deadline_ms, 120000);
	assert_false(cfg.skip_verify);
	assert_string_equal(cfg.auth_mount, "auth/approle-nodes");
	vault_config_free(&cfg);
}

static void config_defaults(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct werr err = {0};
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), 0);
	assert_string_equal(cfg.addr, "https://127.0.0.1:8200");
	assert_string_equal(cfg.mount, "transit");
	assert_string_equal(cfg.key, "wrapd");
	assert_int_equal(cfg.timeout_ms, 60000);
	assert_int_equal(cfg.connect_timeout_ms, 10000);
	assert_int_equal(cfg.max_retries, 2);
	assert_int_equal(cfg.auth, VAULT_AUTH_TOKEN);
	vault_config_free(&cfg);

	assert_int_equal(parse(&cfg, "vault_auth = kubernetes\nvault_role = wrapd\n", &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), 0);
	assert_string_equal(cfg.jwt_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
	assert_string_equal(cfg.auth_mount, "auth/kubernetes");
	vault_config_free(&cfg);
}

static void config_bad_lines(void **state)
{
	(void)state;
	static const struct { const char *text, *msg; } bad[] = {
		{"vault_addr\n", "/etc/wrapd/wrapd.conf:1: expected 'key = value'"},
		{"# ok\nvault_adr = https://x\n", "/etc/wrapd/wrapd.conf:2: unknown key 'vault_adr'"},
		{"vault_key = a\nvault_key = b\n", "/etc/wrapd/wrapd.conf:2: 'vault_key' set twice"},
		{"vault_key = wrapd # prod\n", "/etc/wrapd/wrapd.conf:1: unquoted value"},
		{"vault_key = \"wrapd\n", "/etc/wrapd/wrapd.conf:1: unterminated quote"},
		{"vault_addr = ftp://x\n", "/etc/wrapd/wrapd.conf:1: vault_addr must start with https:// or http://"},
		{"vault_skip_verify = yes\n", "/etc/wrapd/wrapd.conf:1: vault_skip_verify: 'yes' is not a boolean"},
		{"vault_max_retries = -1\n", "/etc/wrapd/wrapd.conf:1: vault_max_retries: '-1' is not a number"},
		{"vault_client_timeout = 10 s\n", "/etc/wrapd/wrapd.conf:1: unquoted value"},
		{"vault_client_timeout = 10y\n", "/etc/wrapd/wrapd.conf:1: vault_client_timeout: '10y' is not a duration"},
		{"vault_auth = ldap\n", "/etc/wrapd/wrapd.conf:1: vault_auth: 'ldap' is not one of"},
		{"vault_key = ../sys\n", "/etc/wrapd/wrapd.conf:1: vault_key '../sys' may hold only"},
		{"vault_mount = a/../b\n", "/etc/wrapd/wrapd.conf:1: vault_mount 'a/../b' may hold only"},
		{"vault_token = s.abc\n", "/etc/wrapd/wrapd.conf:1: vault_token does not belong"},
		{"Vault_Key = x\n", "/etc/wrapd/wrapd.conf:1: bad key"},
		{"vault_key = a\x1b[2Jb\n", "/etc/wrapd/wrapd.conf:1: control character"},
		{"\n\nvault_key =\n", "/etc/wrapd/wrapd.conf:3: empty value for 'vault_key'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vault_config cfg;
		struct werr err = {0};
		int rc = parse(&cfg, bad[i].text, &err);
		if (rc != -EINVAL || strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)))
			fail_msg("case %zu: rc %d, message '%s', wanted '%s...'", i, rc, err.msg,
				 bad[i].msg);
		assert_null(strchr(err.msg, '\n'));
		vault_config_free(&cfg);
	}

	/* A NUL byte, an overlong line, an oversized file. */
	struct vault_config cfg;
	struct werr err = {0};
	vault_config_defaults(&cfg);
	assert_int_equal(vault_config_parse(&cfg, "f", "a\0b", 3, &err), -EINVAL);
	assert_string_equal(err.msg, "f: contains a NUL byte; not a text file");
	char *big = malloc(VAULT_CONFIG_MAX_BYTES + 2);
	assert_non_null(big);
	memset(big, 'a', VAULT_CONFIG_MAX_BYTES + 1);
	big[VAULT_CONFIG_MAX_BYTES + 1] = '\0';
	assert_int_equal(vault_config_parse(&cfg, "f", big, 5000, &err), -EINVAL);
	assert_string_equal(err.msg, "f:1: line longer than 4096 bytes");
	assert_int_equal(vault_config_parse(&cfg, "f", big, VAULT_CONFIG_MAX_BYTES + 1, &err), -EFBIG);
	free(big);
	vault_config_free(&cfg);
}

static void config_finish_checks(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct werr err = {0};
	assert_int_equal(parse(&cfg, "vault_client_cert = /c\n", &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "both"));
	vault_config_free(&cfg);
	assert_int_equal(parse(&cfg, "vault_auth = kubernetes\n", &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "vault_auth = kubernetes needs vault_role");
	vault_config_free(&cfg);
	assert_int_equal(parse(&cfg, "vault_auth = approle\nvault_role_id = x\n", &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), -EINVAL);
	vault_config_free(&cfg);
}

static const char *fake_env(const char *name)
{
	if (!strcmp(name, "VAULT_ADDR"))
		return "http://127.0.0.1:1234";
	if (!strcmp(name, "VAULT_SKIP_VERIFY"))
		return "true";
	if (!strcmp(name, "VAULT_MAX_RETRIES"))
		return "7";
	if (!strcmp(name, "VAULT_CLIENT_TIMEOUT"))
		return "5";
	if (!strcmp(name, "VAULT_NAMESPACE"))
		return ""; /* empty = unset, as in Vault's CLI */
	return NULL;
}

static const char *bad_env(const char *name)
{
	return !strcmp(name, "VAULT_SKIP_VERIFY") ? "maybe" : NULL;
}

static void config_env_overrides_file(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct werr err = {0};
	assert_int_equal(parse(&cfg, "vault_addr = https://file:8200\nvault_namespace = ns\n", &err), 0);
	assert_int_equal(vault_config_apply_env(&cfg, fake_env, &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), 0);
	assert_string_equal(cfg.addr, "http://127.0.0.1:1234");
	assert_string_equal(cfg.namespace_, "ns");
	assert_true(cfg.skip_verify);
	assert_int_equal(cfg.max_retries, 7);
	assert_int_equal(cfg.timeout_ms, 5000);
	vault_config_free(&cfg);

	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_int_equal(vault_config_apply_env(&cfg, bad_env, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "environment VAULT_SKIP_VERIFY: vault_skip_verify: 'maybe' is not a boolean (true or false)");
	vault_config_free(&cfg);
}

static void config_load_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/wrapd-vault-unit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/wrapd.conf", dir);
	struct vault_config cfg;
	struct werr err = {0};
	/* An explicitly named file must exist. */
	assert_int_equal(vault_config_load(&cfg, path, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	const char *text = "vault_key = k1\nvault_mount = m1\n";
	assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
	unsetenv("VAULT_ADDR");
	assert_int_equal(vault_config_load(&cfg, path, &err), 0);
	assert_string_equal(cfg.key, "k1");
	assert_string_equal(cfg.mount, "m1");
	vault_config_free(&cfg);
	/* A directory is not a config file. */
	assert_int_equal(vault_config_load(&cfg, dir, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	unlink(path);
	rmdir(dir);
}

static void config_set_override(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct werr err = {0};
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_int_equal(vault_config_finish(&cfg, &err), 0);
	assert_int_equal(vault_config_set(&cfg, "vault_mount", "transit2", &err), 0);
	assert_string_equal(cfg.mount, "transit2");
	assert_int_equal(vault_config_set(&cfg, "vault_key", "a b", &err), -EINVAL);
	assert_int_equal(vault_config_set(&cfg, "nope", "x", &err), -EINVAL);
	vault_config_free(&cfg);
}

static void durations_and_bools(void **state)
{
	(void)state;
	long ms;
	assert_int_equal(vault_parse_duration_ms("60", &ms), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(vault_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(vault_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(vault_parse_duration_ms("", &ms), -EINVAL);
	assert_int_equal(vault_parse_duration_ms("s", &ms), -EINVAL);
	assert_int_equal(vault_parse_duration_ms("1.5s", &ms), -EINVAL);
	bool b;
	assert_int_equal(vault_parse_bool("True", &b), 0);
	assert_true(b);
	assert_int_equal(vault_parse_bool("0", &b), 0);
	assert_false(b);
	assert_int_equal(vault_parse_bool("yes", &b), -EINVAL);
}

static void error_formatting(void **state)
{
	(void)state;
	char buf[512];
	json_t *j = json_loads("{\"errors\":[\"cipher: message authentication failed\"]}", 0, NULL);
	vault_format_http_error(buf, sizeof(buf), "POST", "transit/decrypt/wrapd", 400, j);
	assert_string_equal(buf, "vault: POST transit/decrypt/wrapd: 400: cipher: message authentication failed");
	json_decref(j);
	j = json_loads("{\"errors\":[\"a\",\"\",\"b\\u001b[31m\"]}", 0, NULL);
	vault_format_http_error(buf, sizeof(buf), "GET", "x", 500, j);
	assert_string_equal(buf, "vault: GET x: 500: a; b?[31m");
	json_decref(j);
	j = json_loads("{\"errors\":[]}", 0, NULL);
	vault_format_http_error(buf, sizeof(buf), "GET", "transit/keys/wrapd", 404, j);
	assert_string_equal(buf, "vault: GET transit/keys/wrapd: 404: not found");
	json_decref(j);
	vault_format_http_error(buf, sizeof(buf), "GET", "sys/health", 503, NULL);
	assert_string_equal(buf, "vault: GET sys/health: 503: Vault is sealed or unavailable");
	/* Truncation stays NUL-terminated. */
	vault_format_http_error(buf, 20, "GET", "sys/health", 503, NULL);
	assert_int_equal(strlen(buf), 19);
}

static void retry_decisions(void **state)
{
	(void)state;
	assert_true(vault_should_retry(412, CURLE_OK));
	assert_true(vault_should_retry(429, CURLE_OK));
	assert_true(vault_should_retry(500, CURLE_OK));
	assert_true(vault_should_retry(502, CURLE_OK));
	assert_true(vault_should_retry(503, CURLE_OK));
	assert_true(vault_should_retry(599, CURLE_OK));
	assert_false(vault_should_retry(501, CURLE_OK));
	assert_false(vault_should_retry(400, CURLE_OK));
	assert_false(vault_should_retry(403, CURLE_OK));
	assert_false(vault_should_retry(404, CURLE_OK));
	assert_false(vault_should_retry(200, CURLE_OK));
	assert_false(vault_should_retry(307, CURLE_OK));
	assert_true(vault_should_retry(0, CURLE_COULDNT_CONNECT));
	assert_true(vault_should_retry(0, CURLE_GOT_NOTHING));
	assert_true(vault_should_retry(0, CURLE_RECV_ERROR));
	assert_true(vault_should_retry(0, CURLE_OPERATION_TIMEDOUT));
	assert_false(vault_should_retry(0, CURLE_PEER_FAILED_VERIFICATION));
	assert_false(vault_should_retry(0, CURLE_SSL_CACERT_BADFILE));
	assert_false(vault_should_retry(0, CURLE_SSL_CONNECT_ERROR));
	assert_false(vault_should_retry(0, CURLE_UNSUPPORTED_PROTOCOL));
}

static void backoff_is_linear_with_jitter(void **state)
{
	(void)state;
	uint32_t rnds[] = {0, 1, 250, 499, 500, 12345, UINT32_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(rnds); i++) {
		uint64_t a = vault_backoff_ms(1, rnds[i]), b = vault_backoff_ms(2, rnds[i]);
		assert_in_range(a, 1000, 1500);
		assert_in_range(b, 2000, 3000);
	}
	assert_int_equal(vault_backoff_ms(1, 0), 1000);
	assert_int_equal(vault_backoff_ms(3, 0), 3000);
}

static void secrets_extracted_before_parsing(void **state)
{
	(void)state;
	static const char *const keys[] = {"plaintext", "client_token", NULL};
	const char *in =
		"{\"data\":{\"plaintext\" : \"QUJD\\/RA==\",\"ciphertext\":\"vault:v1:x\","
		"\"note\":\"plaintext\",\"batch_results\":[{\"plaintext\":\"\"},{\"error\":\"bad\","
		"\"plaintext\":null}]},\"auth\":{\"client_token\":\"s.secret\"},"
		"\"x\":\"\\\"plaintext\\\":\\\"no\\\"\"}";
	struct secbuf secrets[8];
	size_t n = 0;
	char *out = NULL;
	assert_int_equal(vault_json_extract_secrets(in, strlen(in), keys, &out, secrets, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_null(strstr(out, "QUJD"));
	assert_null(strstr(out, "s.secret"));
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	if (!j)
		fail_msg("redacted JSON does not parse: %s: %s", je.text, out);
	json_t *d = json_object_get(j, "data");
	struct secbuf *p = vault_secret_ref(json_object_get(d, "plaintext"), secrets, n);
	assert_non_null(p);
	assert_int_equal(p->len, 9); /* "\/" unescaped */
	assert_string_equal((char *)p->data, "QUJD/RA==");
	assert_string_equal(json_string_value(json_object_get(d, "note")), "plaintext");
	p = vault_secret_ref(json_object_get(json_array_get(json_object_get(d, "batch_results"), 0),
					     "plaintext"), secrets, n);
	assert_non_null(p);
	assert_int_equal(p->len, 0);
	assert_true(json_is_null(json_object_get(json_array_get(json_object_get(d, "batch_results"), 1),
						 "plaintext")));
	p = vault_secret_ref(json_object_get(json_object_get(j, "auth"), "client_token"), secrets, n);
	assert_string_equal((char *)p->data, "s.secret");
	assert_string_equal(json_string_value(json_object_get(j, "x")), "\"plaintext\":\"no\"");
	/* A forged placeholder that points nowhere is refused. */
	json_t *forged = json_string("#99");
	assert_null(vault_secret_ref(forged, secrets, n));
	json_decref(forged);
	json_decref(j);
	free(out);
	for (size_t i = 0; i < n; i++)
		secbuf_free(&secrets[i]);

	/* Escapes other than \/ in a secret, too many secrets, unterminated text. */
	const char *esc = "{\"plaintext\":\"a\\u0041\"}";
	assert_int_equal(vault_json_extract_secrets(esc, strlen(esc), keys, &out, secrets, 8, &n), -EINVAL);
	const char *many = "[{\"plaintext\":\"a\"},{\"plaintext\":\"b\"}]";
	assert_int_equal(vault_json_extract_secrets(many, strlen(many), keys, &out, secrets, 1, &n), -E2BIG);
	const char *unterminated = "{\"plaintext\":\"abc";
	assert_int_equal(vault_json_extract_secrets(unterminated, strlen(unterminated), keys, &out,
						    secrets, 8, &n), -EINVAL);
}

/* Issue 10 item 8: keys spelt with escapes are secret keys too; a secret key
 * with a non-string value refuses the answer; jansson never sees a secret. */
static void escaped_secret_keys(void **state)
{
	(void)state;
	static const char *const keys[] = {"plaintext", "client_token", NULL};
	static const char *const found[] = {
		"{\"data\":{\"plain\\u0074ext\":\"QUJDRA==\"}}",
		"{\"data\":{\"\\u0070\\u006C\\u0061\\u0069\\u006e\\u0074\\u0065\\u0078\\u0074\" :\"QUJDRA==\"}}",
		"{\"data\":{\"plaintex\\u0074\":\"QUJDRA==\",\"ciphertex\\u0074\":\"vault:v1:x\"}}",
		"{\"auth\":{\"client\\u005ftoken\":\"QUJDRA==\"}}",
		"{\"auth\":{\"client_toke\\u006E\":\"QUJDRA==\"}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(found); i++) {
		struct secbuf secrets[4];
		size_t n = 0;
		char *out = NULL;
		int rc = vault_json_extract_secrets(found[i], strlen(found[i]), keys, &out, secrets, 4, &n);
		if (rc != 0 || n != 1)
			fail_msg("case %zu: rc %d, %zu secrets", i, rc, n);
		assert_null(strstr(out, "QUJD"));
		assert_string_equal((char *)secrets[0].data, "QUJDRA==");
		json_t *j = json_loads(out, JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(j);
		json_t *o = json_object_get(j, i == 3 || i == 4 ? "auth" : "data");
		struct secbuf *p = vault_secret_ref(json_object_get(o, i == 3 || i == 4 ? "client_token" : "plaintext"),
						    secrets, n);
		assert_ptr_equal(p, &secrets[0]);
		json_decref(j);
		free(out);
		secbuf_free(&secrets[0]);
	}
	/* Not a secret key once decoded: left alone (jansson reads a different key). */
	static const char *const other[] = {
		"{\"plaintext\\u0000\":\"x\"}", "{\"plain\\u0074exts\":\"x\"}", "{\"\\ud83d\\ude00\":\"x\"}",
		"{\"x\":\"plain\\u0074ext\"}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
		struct secbuf secrets[4];
		size_t n = 9;
		char *out = NULL;
		assert_int_equal(vault_json_extract_secrets(other[i], strlen(other[i]), keys, &out, secrets, 4, &n), 0);
		assert_int_equal(n, 0);
		assert_string_equal(out, other[i]);
		free(out);
	}
	/* Refused: a secret key holding something else than a string or null,
	 * and escapes that no JSON parser accepts in a key. */
	static const char *const refused[] = {
		"{\"plaintext\":[\"QUJDRA==\"]}", "{\"plain\\u0074ext\":{\"a\":\"QUJDRA==\"}}",
		"{\"plaintext\":12}", "{\"plaintext\":true}",
		"{\"plain\\u00zzext\":\"x\"}", "{\"plain\\q\":\"x\"}", "{\"\\ud83d\":\"x\"}",
		"{\"\\ude00x\":\"x\"}", "{\"plain\\u007\":\"x\"}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		struct secbuf secrets[4];
		size_t n = 0;
		char *out = NULL;
		int rc = vault_json_extract_secrets(refused[i], strlen(refused[i]), keys, &out, secrets, 4, &n);
		if (rc != -EINVAL)
			fail_msg("case %zu (%s): rc %d", i, refused[i], rc);
		assert_null(out);
		assert_int_equal(n, 0);
	}
}

static void loopback_and_origin(void **state)
{
	(void)state;
	static const struct { const char *url; bool loop; } l[] = {
		{"http://127.0.0.1:8200", true}, {"http://127.1.2.3", true}, {"http://localhost:8200", true},
		{"http://LOCALHOST:1/", true}, {"http://[::1]:8200", true},
		{"http://localhost.example.com:8200", false}, {"http://127.0.0.1.nip.io", false},
		{"http://127evil.example", false}, {"http://localhostx", false},
		{"http://localhost@evil.example", false}, {"http://128.0.0.1", false},
		{"http://[::2]", false}, {"http://10.0.0.1", false}, {"not a url", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(l); i++)
		if (vault_addr_is_loopback(l[i].url) != l[i].loop)
			fail_msg("%s: loopback should be %d", l[i].url, l[i].loop);
	static const struct { const char *a, *b; bool same; } o[] = {
		{"https://v:8200/v1/x", "https://v:8200/v1/y?z", true},
		{"https://V:8200/v1/x", "https://v:8200/", true},
		{"https://v/v1/x", "https://v:443/v1/x", true},
		{"https://v:8200/v1/x", "https://v:8201/v1/x", false},
		{"https://v:8200/v1/x", "http://v:8200/v1/x", false},
		{"http://v:8200/v1/x", "http://w:8200/v1/x", false},
		{"http://127.0.0.1:8200/v1/x", "http://localhost:8200/v1/x", false},
		{"https://v:8200/v1/x", "https://v:8200@evil:8200/v1/x", false},
		{"https://v:8200/v1/x", "garbage", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(o); i++)
		if (vault_same_origin(o[i].a, o[i].b) != o[i].same)
			fail_msg("%s vs %s: same origin should be %d", o[i].a, o[i].b, o[i].same);
	/* The client warns (even with -q, errors only) for a plain-http
	 * address that only looks like loopback, and not for a real one. */
	for (int k = 0; k < 2; k++) {
		char *text = NULL;
		size_t tl = 0;
		FILE *f = open_memstream(&text, &tl);
		struct wlog q = {.out = f, .level = WLOG_ERROR, .prog = "t"};
		struct vault_config cfg;
		struct werr err = {0};
		vault_config_defaults(&cfg);
		assert_int_equal(vault_config_set(&cfg, "vault_addr",
						  k ? "http://127.0.0.1:8200" : "http://localhost.example.com:8200",
						  &err), 0);
		assert_int_equal(vault_config_finish(&cfg, &err), 0);
		struct vault_client *vc = NULL;
		assert_int_equal(vault_client_new(&cfg, &q, &vc, &err), 0);
		vault_client_free(vc);
		vault_config_free(&cfg);
		fclose(f);
		if (k)
			assert_string_equal(text, "");
		else
			assert_string_equal(text, "t: warning: vault: http://localhost.example.com:8200 is plain http: keys would cross the network unencrypted\n");
		free(text);
	}
}

static void context_for_uuid(void **state)
{
	(void)state;
	char *c = NULL;
	assert_int_equal(vault_context_for_uuid("0F1E2D3C-4B5A-6978-8796-a5b4c3d2e1f0", &c), 0);
	uint8_t raw[64];
	size_t n;
	assert_int_equal(b64_decode(c, strlen(c), raw, sizeof(raw), &n), 0);
	assert_int_equal(n, 48);
	assert_memory_equal(raw, "wrapd-vk-v1:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", 48);
	free(c);
	assert_int_equal(vault_context_for_uuid("0f1e2d3c4b5a69788796a5b4c3d2e1f0", &c), -EINVAL);
	assert_int_equal(vault_context_for_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg", &c), -EINVAL);
	assert_int_equal(vault_context_for_uuid("0f1e2d3c-4b5a-6978-8796a-5b4c3d2e1f0", &c), -EINVAL);
	assert_null(c);
}

static void path_parts(void **state)
{
	(void)state;
	assert_true(vault_valid_path_part("transit", true));
	assert_true(vault_valid_path_part("a/b-c_d.e", true));
	assert_false(vault_valid_path_part("a/b", false));
	assert_false(vault_valid_path_part("/a", true));
	assert_false(vault_valid_path_part("a/", true));
	assert_false(vault_valid_path_part("a//b", true));
	assert_false(vault_valid_path_part("..", true));
	assert_false(vault_valid_path_part("a?b", true));
	assert_false(vault_valid_path_part("", true));
}

static void observer_dummy(void *arg, const char *op, long status, uint64_t duration_us)
{
	(void)arg;
	(void)op;
	(void)status;
	(void)duration_us;
}

/* The observer's operation names (agent metrics): from the configured
 * Transit mount and fixed auth paths, never from free parts of a path. */
static void request_op_names(void **state)
{
	(void)state;
	struct vault_client vc;
	memset(&vc, 0, sizeof(vc));
	vc.cfg.mount = (char *)"secrets/transit";
	assert_string_equal(vault_request_op(&vc, "secrets/transit/decrypt/wrapd"), "decrypt");
	assert_string_equal(vault_request_op(&vc, "secrets/transit/datakey/plaintext/wrapd"), "datakey");
	assert_string_equal(vault_request_op(&vc, "secrets/transit/rewrap/wrapd"), "rewrap");
	assert_string_equal(vault_request_op(&vc, "secrets/transit/keys/wrapd"), "keys");
	assert_string_equal(vault_request_op(&vc, "auth/token/lookup-self"), "lookup-self");
	assert_string_equal(vault_request_op(&vc, "auth/token/renew-self"), "renew");
	assert_string_equal(vault_request_op(&vc, "auth/kubernetes/login"), "login");
	assert_string_equal(vault_request_op(&vc, "sys/health"), "health");
	/* Not the configured mount, or a name that only starts like an op. */
	assert_string_equal(vault_request_op(&vc, "transit/decrypt/wrapd"), "other");
	assert_string_equal(vault_request_op(&vc, "secrets/transit/decryptx/wrapd"), "other");
	assert_string_equal(vault_request_op(&vc, "secrets/transitx/decrypt/wrapd"), "other");
	assert_string_equal(vault_request_op(&vc, "sys/mounts"), "other");
	/* The observer setter and its copy to a client made for another key. */
	struct vault_client other;
	memset(&other, 0, sizeof(other));
	vault_client_set_observer(&vc, observer_dummy, &vc);
	vault_client_observer_copy(&other, &vc);
	assert_ptr_equal(other.observe_arg, &vc);
	assert_ptr_equal(other.observe, observer_dummy);
	vault_client_set_observer(&vc, NULL, &vc);
	assert_null(vc.observe_arg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_op_names),
		cmocka_unit_test(config_good_file),
		cmocka_unit_test(config_defaults),
		cmocka_unit_test(config_bad_lines),
		cmocka_unit_test(config_finish_checks),
		cmocka_unit_test(config_env_overrides_file),
		cmocka_unit_test(config_load_file),
		cmocka_unit_test(config_set_override),
		cmocka_unit_test(durations_and_bools),
		cmocka_unit_test(error_formatting),
		cmocka_unit_test(retry_decisions),
		cmocka_unit_test(backoff_is_linear_with_jitter),
		cmocka_unit_test(secrets_extracted_before_parsing),
		cmocka_unit_test(escaped_secret_keys),
		cmocka_unit_test(loopback_and_origin),
		cmocka_unit_test(context_for_uuid),
		cmocka_unit_test(path_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
