/*
 * wrapctl encrypt | rekey | decrypt | resume: in-place conversions, done by
 * volume_convert() (the engine, with keys from Vault). Progress goes to
 * stderr on a TTY, as JSON lines with --json, else only a final summary.
 * SIGINT/SIGTERM stop at the next checkpoint with a resume hint.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <strings.h>
#include <jansson.h>
#include <signal.h>
#include <time.h>

#include "engine/engine.h"
#include "vault/vault.h"
#include "volume/volume.h"

/* Set by the signal handler only; handed to the engine through its params. */
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct progress {
	bool tty, json;
	double t0, last;
	uint64_t start_done;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_progress(void *arg, const struct conv_progress *p)
{
	struct progress *pr = arg;
	double t = now_s();
	if (!pr->t0) {
		pr->t0 = t;
		pr->start_done = p->done;
	}
	bool last = p->done >= p->total;
	if (!last && t - pr->last < (pr->json ? 1.0 : 0.2))
		return;
	pr->last = t;
	double el = t - pr->t0, moved = (double)(p->done - pr->start_done);
	double rate = el > 0 ? moved / el : 0;
	double pct = p->total ? 100.0 * (double)p->done / (double)p->total : 100.0;
	double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
	if (pr->json) {
		printf("{\"event\":\"progress\",\"op\":\"%s\",\"done\":%llu,\"total\":%llu,\"percent\":%.1f,\"mib_s\":%.1f,\"eta_s\":%.0f}\n",
		       conv_op_name(p->op), (unsigned long long)p->done, (unsigned long long)p->total,
		       pct, rate / 1048576.0, eta);
		fflush(stdout);
	} else if (pr->tty) {
		char bar[31];
		int fill = (int)(pct * 30 / 100);
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = 0;
		fprintf(stderr, "\r%s [%s] %5.1f%%  %7.1f MiB/s  ETA %d:%02d ", conv_op_name(p->op), bar,
			pct, rate / 1048576.0, (int)eta / 60, (int)eta % 60);
		fflush(stderr);
	}
}

/* --zone-size: N with K/KiB or M/MiB (none: MiB), a power of two in
 * [CONV_ZONE_MIN, CONV_ZONE_MAX]. */
static int parse_zone_size(const char *s, uint64_t *out)
{
	char num[24];
	size_t n = strspn(s, "0123456789");
	if (!n || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = 0;
	uint64_t v, unit;
	const char *u = s + n;
	if (!*u || !strcasecmp(u, "M") || !strcasecmp(u, "MiB"))
		unit = 1ull << 20;
	else if (!strcasecmp(u, "K") || !strcasecmp(u, "KiB"))
		unit = 1ull << 10;
	else
		return -EINVAL;
	if (parse_u64(num, &v) < 0 || v > CONV_ZONE_MAX / unit)
		return -EINVAL;
	v *= unit;
	if (v < CONV_ZONE_MIN || (v & (v - 1)))
		return -EINVAL;
	*out = v;
	return 0;
}

static void usage(const char *cmd, FILE *out)
{
	if (!strcmp(cmd, "encrypt"))
		fprintf(out,
			"Usage: wrapctl encrypt DEVICE [--header FILE] [--tail-is-free] [--json]\n"
			"                       [--sector-size N] [--vault-key K] [--vault-mount M]\n"
			"Encrypts DEVICE in place. Without --header the data moves up by the 16 MiB\n"
			"header: the last 17 MiB (16 MiB data offset + 1 MiB) must be free, which is\n"
			"checked against the filesystem's size (ext2/3/4, xfs, btrfs); raw data needs\n"
			"--tail-is-free. With --header FILE the data is encrypted where it lies and\n"
			"FILE (created, 16 MiB) holds the header.\n");
	else
		fprintf(out,
			"Usage: wrapctl %s DEVICE [--header FILE] [--json] [--vault-key K] [--vault-mount M]%s\n"
			"%s\n",
			cmd, strcmp(cmd, "decrypt") ? "\n       [--max-rate MiB/s] [--zone-size SIZE]" : "",
			!strcmp(cmd, "rekey") ? "Re-encrypts every sector with a new volume key from Vault; online (the\n"
						"volume stays open and in use) when its wrapd mapping is open."
			: !strcmp(cmd, "decrypt")
				? "Turns DEVICE back to plaintext in place (a shifted volume is shifted back)."
				: "Continues an interrupted encrypt, rekey or decrypt (a rekey online when\n"
				  "the volume's wrapd mapping is open).");
	if (strcmp(cmd, "encrypt") && strcmp(cmd, "decrypt"))
		fprintf(out, "--max-rate N limits an online rekey to N MiB/s.\n"
			     "--zone-size SIZE (256K to 64M, a power of two; default 4M) is the part of an\n"
			     "online rekey whose I/O is held while it is rewritten.\n");
	fprintf(out, "SIGINT/SIGTERM stop at a checkpoint; 'wrapctl resume DEVICE' continues.\n");
}

static int run_convert(struct wrapctl_ctx *ctx, int argc, char **argv)
{
	const char *cmd = argv[0];
	enum conv_op op = !strcmp(cmd, "encrypt") ? CONV_ENCRYPT
			  : !strcmp(cmd, "rekey") ? CONV_REKEY
			  : !strcmp(cmd, "decrypt") ? CONV_DECRYPT : CONV_RESUME;
	static const struct option opts[] = {
		{"header", required_argument, NULL, 'H'},
		{"tail-is-free", no_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'j'},
		{"sector-size", required_argument, NULL, 's'},
		{"max-rate", required_argument, NULL, 'r'},
		{"zone-size", required_argument, NULL, 'z'},
		{"help", no_argument, NULL, 'h'},
		CLI_VAULT_LONGOPTS,
		{0},
	};
	const char *header = NULL;
	bool tail_free = false, json = ctx->json;
	uint64_t ss = 0, rate = 0, zone = 0;
	int c;
	while ((c = getopt_long(argc, argv, "H:Tjs:r:z:h", opts, NULL)) != -1) {
		if (cli_vault_option(ctx, c, optarg))
			continue;
		switch (c) {
		case 'H':
			header = optarg;
			break;
		case 'T':
			if (op != CONV_ENCRYPT)
				return cli_fail(ctx, "--tail-is-free only applies to encrypt");
			tail_free = true;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			if (op != CONV_ENCRYPT || parse_u64(optarg, &ss) < 0 || ss > 4096)
				return cli_fail(ctx, "--sector-size takes 512, 1024, 2048 or 4096 (encrypt only)");
			break;
		case 'r':
			if ((op != CONV_REKEY && op != CONV_RESUME) || parse_u64(optarg, &rate) < 0 ||
			    !rate || rate > (1ull << 30))
				return cli_fail(ctx, "--max-rate takes a rate in MiB/s, 1 or more (rekey and resume only)");
			break;
		case 'z':
			if ((op != CONV_REKEY && op != CONV_RESUME) || parse_zone_size(optarg, &zone) < 0)
				return cli_fail(ctx, "--zone-size takes a power of two from 256K to 64M, e.g. 4M (rekey and resume only)");
			break;
		case 'h':
			usage(cmd, stdout);
			return 0;
		default:
			usage(cmd, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(cmd, stderr);
		return 2;
	}
	const char *dev = argv[optind];
	struct vault_config cfg;
	if (cli_vault_config(ctx, &cfg))
		return 1;
	struct volume_vault_opts vo;
	cli_vault_opts(ctx, &vo);
	struct volume_ctx vctx = {.log = &ctx->log, .vcfg = &cfg, .udev = -1,
				  .vault_key_explicit = volume_vault_opts_key_explicit(&vo)};
	struct progress pr = {.tty = isatty(STDERR_FILENO), .json = json};
	struct volume_convert_req rq = {
		.device = dev,
		.header = header,
		.op = op,
		.sector_size = (uint32_t)ss,
		.tail_is_free = tail_free,
		.progress = on_progress,
		.progress_arg = &pr,
		.stop = &stop_flag,
		.max_rate = rate << 20,
		.zone_size = zone,
	};
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	struct sigaction old_int, old_term;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	struct conv_result res = {0};
	struct werr err = {0};
	int rc = volume_convert(&vctx, &rq, &res, &err);
	vault_config_free(&cfg);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (pr.tty && !json && pr.t0)
		fputc('\n', stderr);
	double mibs = res.seconds > 0 ? (double)res.bytes / res.seconds / 1048576.0 : 0;
	if (json) {
		/* Built with jansson: the device path is the user's and may hold
		 * characters that need escaping. */
		json_t *ev = json_pack("{s:s, s:s, s:s, s:b, s:I, s:f, s:f, s:s, s:i}",
				       "event", rc == 0 ? "done" : rc == -EINTR ? "interrupted" : "error",
				       "op", conv_op_name(res.op), "device", dev, "resumed", res.resumed,
				       "bytes", (json_int_t)res.bytes, "seconds", res.seconds,
				       "mib_s", mibs, "uuid", res.uuid, "rc", rc);
		if (ev && rc < 0)
			json_object_set_new(ev, "error", json_string(werr_str(&err, rc)));
		if (ev && rq.online && res.zones) {
			/* How long the volume's I/O to a zone waited at most. */
			json_object_set_new(ev, "zone_size", json_integer((json_int_t)res.zone_size));
			json_object_set_new(ev, "zones", json_integer((json_int_t)res.zones));
			json_object_set_new(ev, "hold_max_ms", json_real(res.hold_max_s * 1e3));
			json_object_set_new(ev, "hold_mean_ms", json_real(res.hold_mean_s * 1e3));
		}
		if (ev) {
			json_dumpf(ev, stdout, JSON_COMPACT);
			json_decref(ev);
		}
		putchar('\n');
		fflush(stdout);
	}
	if (rc == -EINTR) {
		fprintf(stderr, "wrapctl: %s\n", werr_str(&err, rc));
		return 3;
	}
	if (rc < 0)
		return cli_fail(ctx, "%s", werr_str(&err, rc));
	if (!json)
		fprintf(stderr, "wrapctl: %s%s%s of %s done: %.1f MiB in %.1f s (%.1f MiB/s)%s\n",
			res.resumed ? "resumed " : "", rq.online ? "online " : "", conv_op_name(res.op), dev,
			(double)res.bytes / 1048576.0, res.seconds, mibs,
			res.op == CONV_DECRYPT && header ? "; the header file no longer opens it" : "");
	if (!json && rq.online && res.zones)
		fprintf(stderr, "wrapctl: %llu zones of %llu KiB, each held at most %.0f ms (mean %.0f ms)\n",
			(unsigned long long)res.zones, (unsigned long long)(res.zone_size >> 10),
			res.hold_max_s * 1e3, res.hold_mean_s * 1e3);
	return 0;
}

const struct wrapctl_cmd cmd_encrypt = {"encrypt", "encrypt a device in place (data shift or --header FILE)", run_convert};
const struct wrapctl_cmd cmd_rekey = {"rekey", "re-encrypt every sector with a new volume key", run_convert};
const struct wrapctl_cmd cmd_decrypt = {"decrypt", "turn a wrapd volume back to plaintext in place", run_convert};
const struct wrapctl_cmd cmd_resume = {"resume", "continue an interrupted encrypt, rekey or decrypt", run_convert};
