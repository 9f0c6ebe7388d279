/*
 * wrapd: the node agent. For now it parses its command line; discovery,
 * reconcile, the kubelet watcher and the status socket arrive with their issues.
 */
#include "common/common.h"

#include <getopt.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: wrapd [OPTIONS]\n"
		"\n"
		"The wrapd node agent: discovers backing devices, opens their dm-crypt\n"
		"mappings with keys unwrapped by Vault Transit, and publishes them.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (default /etc/wrapd/wrapd.conf)\n"
		"  -v, --verbose       more detail on stderr (repeat for debug)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct wlog log = {.out = stderr, .level = WLOG_INFO, .prog = "wrapd"};
	const char *config = "/etc/wrapd/wrapd.conf";
	int c;
	while ((c = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'v':
			if (log.level < WLOG_DEBUG)
				log.level++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("wrapd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'wrapd --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wrapd: unexpected argument '%s'. Try 'wrapd --help'.\n", argv[optind]);
		return 2;
	}
	wlog_error(&log, "the agent's reconcile loop is not built yet (config %s); use wrapctl", config);
	return 1;
}
