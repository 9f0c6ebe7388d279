/* wrapctl: entry point, global options and command dispatch. */
#include "cli/cli.h"

#include <getopt.h>

/* Command families register here; keep the list sorted as users read it. */
static const struct wrapctl_cmd *const commands[] = {
	&cmd_format,
	&cmd_open,
	&cmd_close,
	&cmd_status,
	&cmd_rewrap,
	&cmd_erase,
	&cmd_doctor,
	&cmd_encrypt,
	&cmd_rekey,
	&cmd_decrypt,
	&cmd_resume,
	&cmd_inspect,
	&cmd_header,
	&cmd_vault,
	NULL,
};

int cli_fail(const struct wrapctl_ctx *ctx, const char *fmt, ...)
{
	(void)ctx;
	va_list ap;
	va_start(ap, fmt);
	fputs("wrapctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: wrapctl [OPTIONS] COMMAND [ARGS...]\n"
		"\n"
		"Manage wrapd encrypted volumes: LUKS2-compatible dm-crypt volumes whose\n"
		"keys are wrapped by HashiCorp Vault's Transit engine.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (default /etc/wrapd/wrapd.conf)\n"
		"  -v, --verbose       more detail on stderr (repeat for debug)\n"
		"  -q, --quiet         errors only\n"
		"      --vault-mount M Transit mount (default transit)\n"
		"      --vault-key K   Transit key name (default wrapd)\n"
		"      --vault-addr URL Vault address (default VAULT_ADDR, else the config file)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (commands[i])
			fprintf(out, "  %-16s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(out, "\nRun 'wrapctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	/* Before anything holds a key: no core dumps, not dumpable. */
	int hrc = secmem_harden_process();
	struct wrapctl_ctx ctx = {
		.log = {.out = stderr, .level = WLOG_WARN, .prog = "wrapctl"},
	};
	if (hrc < 0)
		wlog_warn(&ctx.log, "cannot disable core dumps: %s", strerror(-hrc));
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		CLI_VAULT_LONGOPTS,
		{0},
	};
	int c;
	/* '+' stops at the command name so commands parse their own options. */
	while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
		if (cli_vault_option(&ctx, c, optarg))
			continue;
		switch (c) {
		case 'c':
			ctx.config_path = optarg;
			break;
		case 'v':
			if (ctx.log.level < WLOG_DEBUG)
				ctx.log.level++;
			break;
		case 'q':
			ctx.log.level = WLOG_ERROR;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("wrapctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'wrapctl --help'.\n");
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	int first = optind;
	const char *name = argv[first];
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (commands[i] && !strcmp(commands[i]->name, name)) {
			optind = 0; /* reset getopt for the command's own parser */
			return commands[i]->run(&ctx, argc - first, argv + first);
		}
	}
	fprintf(stderr, "wrapctl: unknown command '%s'. Try 'wrapctl --help'.\n", name);
	return 2;
}
