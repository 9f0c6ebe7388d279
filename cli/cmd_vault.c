/*
 * wrapctl vault status: what a node sees of Vault, for debugging. The
 * server's health, who we are authenticated as, and the Transit key, from
 * vault_status_check(); this file prints it. Exit status 0 only when Vault is
 * usable for wrapd: unsealed, the token works, and the key exists and is
 * derived.
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

static void print_server(const struct vault_status *st)
{
	const struct vault_health *h = &st->health;
	printf("server:\n");
	if (st->health_rc < 0) {
		printf("  error: %s\n", werr_str(&st->health_err, st->health_rc));
		return;
	}
	printf("  initialized: %s\n", yesno(h->initialized));
	printf("  sealed: %s\n", yesno(h->sealed));
	printf("  standby: %s%s\n", yesno(h->standby), h->performance_standby ? " (performance standby)" : "");
	printf("  version: %s\n", h->version);
	if (h->cluster_name[0])
		printf("  cluster: %s\n", h->cluster_name);
}

static void print_token(const struct vault_status *st)
{
	const struct vault_token_info *ti = &st->token;
	printf("token:\n");
	if (st->token_rc < 0) {
		printf("  error: %s\n", st->token_rc == -ECANCELED ? "not checked" : werr_str(&st->token_err, st->token_rc));
		return;
	}
	char ttl[64];
	fmt_ttl(ti->ttl, ttl, sizeof(ttl));
	printf("  auth method: %s\n", ti->auth_method);
	printf("  display name: %s\n", ti->display_name);
	printf("  policies: %s\n", ti->policies);
	printf("  ttl: %s%s\n", ttl, ti->ttl > 0 && ti->renewable ? " (renewable)" : "");
}

static void print_key(const struct vault_status *st, const struct vault_config *cfg)
{
	const struct vault_key_info *ki = &st->key;
	printf("transit key:\n");
	printf("  key: %s/keys/%s\n", cfg->mount, cfg->key);
	if (st->key_rc < 0) {
		printf("  error: %s\n", st->key_rc == -ECANCELED ? "not checked" : werr_str(&st->key_err, st->key_rc));
	} else if (!ki->exists) {
		printf("  exists: NO (create it: vault write -f %s/keys/%s derived=true)\n", cfg->mount, cfg->key);
	} else {
		printf("  exists: yes\n");
		printf("  derived: %s\n", ki->derived ? "yes" : "NO (wrapd refuses it: a context binds nothing)");
		printf("  type: %s\n", ki->type);
		printf("  latest version: %u\n", ki->latest_version);
		printf("  min decryption version: %u\n", ki->min_decryption_version);
	}
}

static int status(struct wrapctl_ctx *ctx, bool json)
{
	struct vault_config cfg;
	struct vault_client *vc;
	if (cli_vault_connect(ctx, &cfg, &vc))
		return 1;
	struct vault_status st;
	vault_status_check(vc, &st);
	if (json) {
		json_t *o = vault_status_json(&st, &cfg);
		char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (s)
			puts(s);
		free(s);
		json_decref(o);
	} else {
		printf("Vault %s\n", cfg.addr);
		print_server(&st);
		print_token(&st);
		print_key(&st, &cfg);
	}
	vault_client_free(vc);
	vault_config_free(&cfg);
	return st.ok ? 0 : 1;
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
