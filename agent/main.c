/*
 * wrapd: the node agent, in the foreground (systemd or a container runtime
 * supervises it; it never forks). Bare-metal mode: it keeps the volumes of
 * the host volume table open. See agent/agent.h for the parts.
 */
#include "agent/agent.h"

#include <getopt.h>
#include <sys/inotify.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: wrapd [OPTIONS]\n"
		"\n"
		"The wrapd node agent: keeps the volumes of the volume table open (their\n"
		"keys unwrapped by Vault Transit), follows changes of the table, and\n"
		"answers on its status socket. Runs in the foreground.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE        configuration file (default " AGENT_CONFIG_DEFAULT ")\n"
		"      --table FILE         volume table (overrides volume_table)\n"
		"      --status-socket PATH status socket (overrides status_socket)\n"
		"      --log-format FMT     text or json (overrides log_format)\n"
		"  -o, --set KEY=VALUE      any agent setting of the config file (repeatable)\n"
		"      --check-config       read the configuration, say what is wrong, exit 0 or 1\n"
		"  -v, --verbose            more detail on stderr (repeat for debug)\n"
		"  -h, --help               show this help\n"
		"  -V, --version            show the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop (every mapping stays open); SIGHUP rereads\n"
		"the configuration and the table.\n");
}

struct agent_opts {
	const char *config;
	const char *sets[32];      /* "key=value" overrides, in order */
	size_t nsets;
	char named[3][4200];       /* --table/--status-socket/--log-format as key=value */
	enum wlog_level level;
	bool check_config;
};

/* Loads the settings: file, then command-line overrides. */
static int load_settings(const struct agent_opts *o, struct agent_config *c, struct vault_config *vcfg,
			 struct werr *err)
{
	int r = agent_config_load(c, vcfg, o->config, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < o->nsets; i++) {
		_cleanup_free_ char *kv = strdup(o->sets[i]);
		char *eq = kv ? strchr(kv, '=') : NULL;
		if (!eq) {
			r = werr_set(err, -EINVAL, "--set %s: expected KEY=VALUE", o->sets[i]);
			break;
		}
		*eq = '\0';
		r = agent_config_set(c, kv, eq + 1, err);
		if (r < 0) {
			werr_prefix(err, r, "--set %s", kv);
			break;
		}
	}
	if (r < 0) {
		agent_config_free(c);
		vault_config_free(vcfg);
	}
	return r;
}

/* The Vault settings once more, for the rekey worker (each worker owns
 * its client and its settings). NULL when they cannot be read. */
static struct vault_config *vault_again(const struct agent_opts *o, struct werr *err)
{
	struct agent_config c;
	struct vault_config *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	if (load_settings(o, &c, v, err) < 0) {
		free(v);
		return NULL;
	}
	agent_config_free(&c);
	return v;
}

void agent_reload(struct agent *a)
{
	struct agent_config c;
	struct vault_config *v = calloc(1, sizeof(*v));
	struct werr e;
	werr_clear(&e);
	hooks_reloading(a);
	int r = v ? load_settings(a->opts, &c, v, &e) : -ENOMEM;
	if (r < 0) {
		free(v);
		alog(a->log, WLOG_ERROR, NULL, a->config_path, "reload",
		     "%s; keeping the current settings", werr_str(&e, r));
	} else {
		if (strcmp(c.status_socket, a->cfg.status_socket))
			alog(a->log, WLOG_WARN, NULL, c.status_socket, "reload",
			     "status_socket changed; it takes effect when the agent restarts");
		if (c.log_json != a->cfg.log_json)
			alog(a->log, WLOG_WARN, NULL, NULL, "reload",
			     "log_format changed; it takes effect when the agent restarts");
		bool table_moved = strcmp(c.volume_table, a->cfg.volume_table) != 0;
		free(a->token_file);
		a->token_file = v->auth == VAULT_AUTH_TOKEN && v->token_file ? strdup(v->token_file) : NULL;
		worker_set_vault(a->w, v);
		struct vault_config *v2 = a->rw ? vault_again(a->opts, &e) : NULL;
		if (v2)
			worker_set_vault(a->rw, v2);
		agent_config_free(&a->cfg);
		a->cfg = c;
		/* Watches follow the (possibly new) table and token paths. */
		int ino = a->inofd;
		a->inofd = -1;
		table_watch_fini(a);
		a->inofd = ino;
		if (a->table_wd >= 0)
			inotify_rm_watch(a->inofd, a->table_wd);
		if (a->token_wd >= 0 && a->token_wd != a->table_wd)
			inotify_rm_watch(a->inofd, a->token_wd);
		if (table_watch_init(a, &e) < 0)
			alog(a->log, WLOG_ERROR, NULL, a->cfg.volume_table, "watch", "%s",
			     werr_str(&e, e.rc));
		if (table_moved)
			alog(a->log, WLOG_INFO, NULL, a->cfg.volume_table, "reload", "the table moved here");
		agent_vault_changed(a);
	}
	if (agent_table_reload(a) == 0)
		agent_retry_failed(a);
	agent_kick(a);
	hooks_reloaded(a);
}

static int parse_args(int argc, char **argv, struct agent_opts *o)
{
	enum { O_TABLE = 1000, O_SOCKET, O_LOGFMT, O_CHECK };
	static const struct option lopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"table", required_argument, NULL, O_TABLE},
		{"status-socket", required_argument, NULL, O_SOCKET},
		{"log-format", required_argument, NULL, O_LOGFMT},
		{"check-config", no_argument, NULL, O_CHECK},
		{"set", required_argument, NULL, 'o'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:o:vhV", lopts, NULL)) != -1) {
		const char *key = NULL;
		switch (c) {
		case 'c': o->config = optarg; continue;
		case 'v': if (o->level < WLOG_DEBUG) o->level++; continue;
		case 'h': usage(stdout); return 0;
		case 'V': printf("wrapd %s\n", PACKAGE_VERSION); return 0;
		case 'o': break;
		case O_CHECK: o->check_config = true; continue;
		case O_TABLE: key = "volume_table"; break;
		case O_SOCKET: key = "status_socket"; break;
		case O_LOGFMT: key = "log_format"; break;
		default: fprintf(stderr, "Try 'wrapd --help'.\n"); return 2;
		}
		if (o->nsets == ARRAY_SIZE(o->sets)) {
			fprintf(stderr, "wrapd: too many overrides\n");
			return 2;
		}
		if (key) {
			char *b = o->named[c - O_TABLE];
			snprintf(b, sizeof(o->named[0]), "%s=%s", key, optarg);
			o->sets[o->nsets++] = b;
		} else {
			o->sets[o->nsets++] = optarg;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wrapd: unexpected argument '%s'. Try 'wrapd --help'.\n", argv[optind]);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	/* Before anything holds a key: no core dumps, not dumpable. */
	int hrc = secmem_harden_process();
	if (hrc < 0)
		fprintf(stderr, "wrapd: warning: cannot disable core dumps: %s\n", strerror(-hrc));
	struct agent_opts o = {.config = NULL, .level = WLOG_INFO};
	int pr = parse_args(argc, argv, &o);
	if (pr >= 0)
		return pr;

	struct alog log;
	struct agent a = {.epfd = -1, .sigfd = -1, .timerfd = -1, .inofd = -1, .statusfd = -1,
			  .table_wd = -1, .token_wd = -1, .token_ttl = -1, .log = &log, .opts = &o};
	a.config_path = o.config ? o.config : AGENT_CONFIG_DEFAULT;
	struct werr err;
	werr_clear(&err);
	struct vault_config *vcfg = calloc(1, sizeof(*vcfg));
	if (!vcfg)
		return 1;
	int r = load_settings(&o, &a.cfg, vcfg, &err);
	if (r < 0) {
		fprintf(stderr, "wrapd: error: %s\n", werr_str(&err, r));
		free(vcfg);
		return 1;
	}
	if (o.check_config) {
		/* The manifest tests check the DaemonSet's ConfigMap this way:
		 * the whole file (every module's keys) and, in Kubernetes mode,
		 * the node name it would use. Nothing else is touched. */
		char node[254];
		if (a.cfg.kubernetes && (r = agent_node_name(&a.cfg, NULL, node, &err)) < 0) {
			fprintf(stderr, "wrapd: error: %s\n", werr_str(&err, r));
			r = 1;
		} else {
			printf("wrapd: %s: the configuration is valid\n", a.config_path);
			r = 0;
		}
		agent_config_free(&a.cfg);
		vault_config_free(vcfg);
		free(vcfg);
		return r;
	}
	if (alog_init(&log, a.cfg.log_json, o.level) < 0)
		return 1;
	a.token_file = vcfg->auth == VAULT_AUTH_TOKEN && vcfg->token_file ? strdup(vcfg->token_file) : NULL;

	int rc = 1;
	struct vault_config *vcfg2 = vault_again(&o, &err);
	if (!vcfg2) {
		fprintf(stderr, "wrapd: error: %s\n", werr_str(&err, err.rc ? err.rc : -ENOMEM));
		return 1;
	}
	if ((r = agent_loop_init(&a, &err)) < 0 ||
	    (r = worker_start(&a.w, vcfg, &log, &err)) < 0 ||
	    (r = worker_start(&a.rw, TAKE_PTR(vcfg2), &log, &err)) < 0 ||
	    (r = table_watch_init(&a, &err)) < 0 ||
	    (r = kube_mode_init(&a, &err)) < 0 ||
	    (r = status_listen(a.cfg.status_socket, &a.statusfd, &err)) < 0 ||
	    (r = hooks_init(&a, &err)) < 0) {
		alog(&log, WLOG_ERROR, NULL, NULL, "start", "%s", werr_str(&err, r));
		if (vcfg2) { /* not handed to the rekey worker */
			vault_config_free(vcfg2);
			free(vcfg2);
		}
		goto out;
	}
	alog(&log, WLOG_INFO, NULL, NULL, "start",
	     "wrapd %s: table %s, status socket %s, pid %d", PACKAGE_VERSION, a.cfg.volume_table,
	     a.cfg.status_socket, (int)getpid());
	(void)agent_table_reload(&a);
	agent_kick(&a);
	r = agent_run(&a, &err);
	if (r < 0)
		alog(&log, WLOG_ERROR, NULL, NULL, "loop", "%s", werr_str(&err, r));
	else
		rc = 0;
out:
	a.stopping = true;
	hooks_stopping(&a);
	if (a.statusfd >= 0) {
		close(a.statusfd);
		unlink(a.cfg.status_socket);
	}
	if (a.rw && worker_busy(a.rw)) {
		/* The flag is set: the rekey stops at its next checkpoint (one
		 * zone at most), releasing what it holds. */
		alog(&log, WLOG_INFO, NULL, NULL, "stopping",
		     "waiting for the online rekey to reach its checkpoint (at most %d s)",
		     AGENT_REKEY_STOP_MS / 1000);
	}
	if (a.rw && worker_wait_idle(a.rw, AGENT_REKEY_STOP_MS)) {
		/* Its result, logged (stopped at a checkpoint, or finished). */
		for (struct job *j = worker_take_done(a.rw); j;) {
			struct job *next = j->next;
			agent_job_done(&a, j);
			job_free(j);
			j = next;
		}
	}
	if (a.rw && !worker_stop(a.rw, 1000)) {
		/* Its guardian process finishes or releases the held zone once
		 * this process is gone; the mapping keeps serving. */
		alog(&log, WLOG_WARN, NULL, NULL, "stopped",
		     "the online rekey did not reach its checkpoint within %d s; exiting without it (its guardian repairs the mapping; the next start resumes it)",
		     AGENT_REKEY_STOP_MS / 1000);
		fflush(NULL);
		_exit(rc);
	}
	if (a.w && !worker_stop(a.w, a.cfg.stop_timeout_ms)) {
		/* A Vault call or dm operation is still running: leave it to the
		 * kernel (a half-made mapping is undone by nothing, but none is
		 * half-made: the library creates a mapping in one ioctl). */
		alog(&log, WLOG_WARN, NULL, NULL, "stopped",
		     "a job was still running after %ld ms; exiting without it", a.cfg.stop_timeout_ms);
		fflush(NULL);
		_exit(rc);
	}
	alog(&log, WLOG_INFO, NULL, NULL, "stopped", "every mapping is left as it is");
	kube_mode_fini(&a);
	hooks_fini(&a);
	table_watch_fini(&a);
	agent_free_vols(&a);
	agent_config_free(&a.cfg);
	free(a.token_file);
	if (a.epfd >= 0)
		close(a.epfd);
	if (a.sigfd >= 0)
		close(a.sigfd);
	if (a.timerfd >= 0)
		close(a.timerfd);
	alog_fini(&log);
	return rc;
}
