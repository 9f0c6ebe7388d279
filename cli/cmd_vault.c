/*
 * wrapctl vault status: what a node sees of Vault, for debugging. The
 * server's health, who we are authenticated as, and the Transit key.
 * Exit status 0 only when Vault is usable for wrapd: unsealed, the token
 * works, and the key exists and is derived.
 */
#include "cli/cli.h"

#include "vault/vault.h"

#include <getopt.h>
#include <jansson.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: wrapctl vault status [--json] [--vault-mount MOUNT] [--vault-key KEY]\n"
		"\n"
		"Show the Vault server's health (sealed, standby, version), the token in use\n"
		"(display name, policies, TTL) and the Transit key (exists, derived, latest and\n"
		"minimum decryption versions). Settings come from the config file and VAULT_*.\n");
}

static const char *yesno(bool b) { return b ? "yes" : "no"; }

static void fmt_ttl(long long ttl, char *buf, size_t n)
{
	if (ttl <= 0) {
		snprintf(buf, n, "never expires");
		return;
	}
	long long h = ttl / 3600, m = ttl % 3600 / 60, s = ttl % 60;
	if (h)
		snprintf(buf, n, "%lldh%02lldm%02llds", h, m, s);
	else if (m)
		snprintf(buf, n, "%lldm%02llds", m, s);
	else
		snprintf(buf, n, "%llds", s);
}

static int status(struct wrapctl_ctx *ctx, bool json)
{
	struct vault_config cfg;
	struct vault_client *vc;
	if (cli_vault_connect(ctx, &cfg, &vc))
		return 1;
	struct werr herr = {0}, terr = {0}, kerr = {0};
	struct vault_health h;
	struct vault_token_info ti;
	struct vault_key_info ki;
	int hrc = vault_health(vc, &h, &herr);
	int trc = hrc < 0 ? hrc : vault_token_lookup(vc, &ti, &terr);
	int krc = trc < 0 ? trc : vault_key_info(vc, &ki, &kerr);
	bool ok = hrc >= 0 && !h.sealed && h.initialized && trc >= 0 && krc >= 0 && ki.exists &&
		  ki.derived;

	if (json) {
		json_t *o = json_object(), *errs = json_array();
		json_object_set_new(o, "addr", json_string(cfg.addr));
		if (hrc >= 0)
			json_object_set_new(o, "server",
					    json_pack("{s:I,s:b,s:b,s:b,s:b,s:s,s:s}", "status",
						      (json_int_t)h.status, "initialized", h.initialized,
						      "sealed", h.sealed, "standby", h.standby,
						      "performance_standby", h.performance_standby,
						      "version", h.version, "cluster_name", h.cluster_name));
		else
			json_array_append_new(errs, json_string(werr_str(&herr, hrc)));
		if (trc >= 0) {
			json_t *pol = json_array();
			char tmp[sizeof(ti.policies)];
			snprintf(tmp, sizeof(tmp), "%s", ti.policies);
			for (char *save = NULL, *p = strtok_r(tmp, ",", &save); p; p = strtok_r(NULL, ",", &save))
				json_array_append_new(pol, json_string(p));
			json_object_set_new(o, "token",
					    json_pack("{s:s,s:s,s:o,s:I,s:b}", "auth_method", ti.auth_method,
						      "display_name", ti.display_name, "policies", pol,
						      "ttl", (json_int_t)ti.ttl, "renewable", ti.renewable));
		} else if (hrc >= 0) {
			json_array_append_new(errs, json_string(werr_str(&terr, trc)));
		}
		if (krc >= 0)
			json_object_set_new(o, "key",
					    json_pack("{s:s,s:s,s:b,s:b,s:s,s:I,s:I}", "mount", cfg.mount,
						      "name", cfg.key, "exists", ki.exists, "derived",
						      ki.derived, "type", ki.type, "latest_version",
						      (json_int_t)ki.latest_version, "min_decryption_version",
						      (json_int_t)ki.min_decryption_version));
		else if (trc >= 0)
			json_array_append_new(errs, json_string(werr_str(&kerr, krc)));
		json_object_set_new(o, "ok", json_boolean(ok));
		json_object_set_new(o, "errors", errs);
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
		json_decref(o);
	} else {
		printf("Vault %s\n", cfg.addr);
		printf("server:\n");
		if (hrc < 0) {
			printf("  error: %s\n", werr_str(&herr, hrc));
		} else {
			printf("  initialized: %s\n", yesno(h.initialized));
			printf("  sealed: %s\n", yesno(h.sealed));
			printf("  standby: %s%s\n", yesno(h.standby),
			       h.performance_standby ? " (performance standby)" : "");
			printf("  version: %s\n", h.version);
			if (h.cluster_name[0])
				printf("  cluster: %s\n", h.cluster_name);
		}
		printf("token:\n");
		if (trc < 0) {
			printf("  error: %s\n", hrc < 0 ? "not checked" : werr_str(&terr, trc));
		} else {
			char ttl[64];
			fmt_ttl(ti.ttl, ttl, sizeof(ttl));
			printf("  auth method: %s\n", ti.auth_method);
			printf("  display name: %s\n", ti.display_name);
			printf("  policies: %s\n", ti.policies);
			printf("  ttl: %s%s\n", ttl, ti.ttl > 0 && ti.renewable ? " (renewable)" : "");
		}
		printf("transit key:\n");
		printf("  key: %s/keys/%s\n", cfg.mount, cfg.key);
		if (krc < 0) {
			printf("  error: %s\n", trc < 0 ? "not checked" : werr_str(&kerr, krc));
		} else if (!ki.exists) {
			printf("  exists: NO (create it: vault write -f %s/keys/%s derived=true)\n",
			       cfg.mount, cfg.key);
		} else {
			printf("  exists: yes\n");
			printf("  derived: %s\n", ki.derived ? "yes" : "NO (wrapd refuses it: a context binds nothing)");
			printf("  type: %s\n", ki.type);
			printf("  latest version: %u\n", ki.latest_version);
			printf("  min decryption version: %u\n", ki.min_decryption_version);
		}
	}
	vault_client_free(vc);
	vault_config_free(&cfg);
	return ok ? 0 : 1;
}

static int run(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		CLI_VAULT_LONGOPTS,
		{0},
	};
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "status")) {
		fprintf(stderr, "wrapctl: vault: unknown subcommand '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	bool json = ctx->json;
	int c;
	optind = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "jh", opts, NULL)) != -1) {
		if (cli_vault_option(ctx, c, optarg))
			continue;
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc - 1) {
		fprintf(stderr, "wrapctl: vault status: unexpected argument '%s'\n", argv[optind + 1]);
		return 2;
	}
	return status(ctx, json);
}

const struct wrapctl_cmd cmd_vault = {
	.name = "vault",
	.summary = "show Vault health, the token in use and the Transit key",
	.run = run,
};
