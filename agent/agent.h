/*
 * agent: the wrapd node daemon (bare-metal mode: the host volume table).
 *
 * It owns: the event loop (agent/loop.c: epoll over signalfd, timerfd,
 * inotify, the status socket and the worker's eventfd), the worker thread
 * that does every blocking operation (Vault, dm, keyring; agent/worker.c),
 * the volumes' states and their reconciliation with the table
 * (agent/state.c), the table watch (agent/table_watch.c), the status socket
 * (agent/status.c), the agent's settings (agent/config.c) and its log lines
 * (agent/log.c). The flows themselves (open, close, status) are the volume
 * library's; the agent only decides when to run them.
 *
 * This is the agent's internal header: nothing outside agent/ includes it,
 * except its tests.
 */
#ifndef WRAPD_AGENT_H
#define WRAPD_AGENT_H

#include "agent/settings.h"
#include "common/common.h"
#include "vault/vault.h"
#include "volume/volume.h"

#include <pthread.h>

/* ---- settings (keys of wrapd.conf that belong to the agent) --------------- */

#define AGENT_CONFIG_DEFAULT "/etc/wrapd/wrapd.conf"

struct agent_config {
	struct agent_settings s;   /* as read (agent/settings.h) */
	struct volume_settings vol;
	/* effective values (defaults applied); strings point into s/vol or are literals */
	const char *volume_table;
	const char *status_socket;
	const char *metrics_listen;  /* "" = off */
	bool log_json;
	long retry_min_ms, retry_max_ms, stop_timeout_ms;
	uint64_t rekey_max_rate;   /* bytes/s for an online rekey the agent resumes, 0 = no limit */
	/* Kubernetes mode (effective values; agent/kube_*.c use them) */
	bool kubernetes;
	const char *discovery_dir, *kubelet_dir, *storage_class, *fs_type, *event_namespace;
	const char *kube_api_url;    /* "" = in-cluster */
	const char *kube_token_file, *kube_ca_file; /* NULL = kube/'s defaults */
	bool convert_existing, block_mode, retain;
};
/* The node's name: node_name, else $NODE_NAME, else the host name
 * (lowercased, as kubelet does); must be a DNS-1123 subdomain. */
int agent_node_name(const struct agent_config *c, const char *(*get)(const char *),
		    char out[254], struct werr *err);
/* Defaults, then the config file (path may be NULL for
 * AGENT_CONFIG_DEFAULT; a missing default file is fine): the agent's keys,
 * volume_table and the Vault client's (vcfg), in one pass. */
int agent_config_load(struct agent_config *c, struct vault_config *vcfg, const char *path,
		      struct werr *err);
/* One agent or volume setting by its config-file name (command-line
 * overrides), validated as in the file. */
int agent_config_set(struct agent_config *c, const char *key, const char *value,
		     struct werr *err);
void agent_config_free(struct agent_config *c);

/* ---- log lines -------------------------------------------------------------- */

/* One event per line on stderr, text or JSON; safe from any thread. Never
 * pass key material. */
struct alog {
	bool json;
	enum wlog_level level;
	FILE *out;                 /* stderr */
	pthread_mutex_t mu;
	FILE *lib;                 /* the sink handed to the library's wlog */
	struct wlog wlog;          /* for the library (volume/, vault/) */
};
int alog_init(struct alog *l, bool json, enum wlog_level level);
void alog_fini(struct alog *l);
/* volume and device may be NULL; event is a short word ("opened"). */
void alog(struct alog *l, enum wlog_level lvl, const char *volume, const char *device,
	  const char *event, const char *fmt, ...) _printf_(6, 7);

/* ---- the worker: every blocking operation, on one thread -------------------- */

enum job_kind {
	JOB_OPEN,                  /* open (or adopt) items; scans the mappings too */
	JOB_CLOSE,                 /* close items[0] unless in use */
	JOB_UPKEEP,                /* Vault token upkeep + TTL */
	JOB_KUBE,                  /* Kubernetes mode: j->kj (agent/kube_jobs.c) */
	JOB_REKEY,                 /* resume items[0]'s online rekey (on the rekey worker) */
};

struct job_item {
	/* in */
	char *name, *device, *header;
	unsigned flags;
	bool adopt_only;           /* noauto: report whether it is mapped, never open */
	bool discovered;           /* Kubernetes mode: classify first (discovery_prepare) */
	bool convert;              /* ... and encrypt a plaintext file system in place (convert_existing) */
	/* out */
	int rc;
	bool vault_error;          /* failed asking Vault: retrying may help */
	bool already_open;
	bool mapped;               /* a wrapd mapping of this name exists after the job */
	bool in_use;               /* JOB_CLOSE: refused because something holds it */
	char msg[WERR_MSG_MAX];
	char backing[4096];
	char luks_uuid[37];
	int key_version;
	int kclass;                /* discovered: enum kclass (agent/kmode.h) */
	int converted;             /* 1 encrypted in place by this job, -1 that failed, 0 not tried */
	char kdetail[512];
	/* a rekey in progress on the mapping (the header's checkpoint, or the
	 * split table without a readable header), from the scan */
	bool rekey;
	uint64_t rekey_done, rekey_total;
	char rekey_source[8];      /* "header" | "table" */
};

struct job {
	enum job_kind kind;
	struct job_item *items;
	size_t n;
	/* out (JOB_OPEN): wrapd mappings whose names are not among the items */
	char (*others)[128];
	size_t nothers;
	/* out (JOB_UPKEEP and any Vault use) */
	int vault_rc;              /* 0 reachable, else the last Vault error */
	char vault_msg[WERR_MSG_MAX];
	long long token_ttl;       /* seconds, 0 = never expires, -1 unknown */
	long long next_upkeep_ms;  /* JOB_UPKEEP: when the next is due, -1 = never */
	unsigned decrypts;         /* Vault decrypt requests this job made (0 or 1 per key) */
	uint64_t duration_ms;
	struct kjob *kj;           /* JOB_KUBE (owned) */
	/* JOB_REKEY: in */
	uint64_t max_rate;         /* bytes/s, 0 = no limit */
	volatile sig_atomic_t *stop; /* the agent's stop flag (SIGTERM/SIGINT) */
	/* JOB_REKEY: out (the run's conv_result) */
	uint64_t rk_bytes;
	double rk_seconds;
	bool rk_interrupted, rk_online;
	struct job *next;
};
void job_free(struct job *j);

struct worker;
/* Starts the thread; it takes ownership of vcfg (malloc'ed, loaded). */
int worker_start(struct worker **out, struct vault_config *vcfg, struct alog *log,
		 struct werr *err);
/* The fd that becomes readable when jobs are done (an eventfd). */
int worker_fd(const struct worker *w);
void worker_submit(struct worker *w, struct job *j);
/* Completed jobs in order (a list through ->next); clears the eventfd. */
struct job *worker_take_done(struct worker *w);
bool worker_busy(struct worker *w);
/* Stops after the current job (queued jobs are dropped); waits up to
 * timeout_ms; returns false when it is still running (the process should then
 * exit without waiting for it). */
bool worker_stop(struct worker *w, long timeout_ms);
/* Drops queued jobs and waits up to timeout_ms for the running one to end
 * (its result is then in the done list); false when it still runs. */
bool worker_wait_idle(struct worker *w, long timeout_ms);
/* Replaces the Vault settings (SIGHUP; takes ownership); the next job uses
 * a new client made from them. */
void worker_set_vault(struct worker *w, struct vault_config *vcfg);
/* Every Vault client the worker makes reports its requests to fn (metrics);
 * set before the first job is submitted. */
void worker_set_observer(struct worker *w, vault_observer_fn fn, void *arg);
/* On the worker thread: a volume context with the worker's Vault client
 * (made on first use), for the Kubernetes mode's jobs. */
int worker_vctx(struct worker *w, struct volume_ctx *vctx, struct werr *err);
/* Kubernetes mode: the mode's state the worker may read (its API client,
 * used on the worker only; node and namespace, fixed at start). Set before
 * the first job is submitted; NULL outside Kubernetes mode. */
struct kmode;
void worker_set_kmode(struct worker *w, struct kmode *km);
struct kmode *worker_kmode(struct worker *w);
/* The agent's log (thread-safe), for lines written on the worker. */
struct alog *worker_log(struct worker *w);
/* A rekey's progress (JOB_REKEY, on the rekey worker's thread): kept as the
 * latest value and signalled through the worker's eventfd, at most once per
 * percent, so the loop wakes only while a rekey moves. */
void worker_post_progress(struct worker *w, const char *name, uint64_t done, uint64_t total);
/* The latest progress posted since the last call (the loop). */
bool worker_take_progress(struct worker *w, char name[128], uint64_t *done, uint64_t *total);

/* ---- volumes and their states -------------------------------------------------- */

enum vol_state {
	VS_CLOSED = 0,             /* not mapped (noauto, or closed after removal) */
	VS_OPENING,                /* a job runs for it */
	VS_OPEN,
	VS_WAITING_VAULT,          /* Vault unreachable, sealed or refusing: retried */
	VS_FAILED,                 /* a problem Vault cannot fix: retried on change/SIGHUP */
	VS_CLOSING,
};
const char *vol_state_name(enum vol_state s);

struct vol {
	char *name, *device, *header;
	unsigned flags;
	bool noauto;
	bool in_table;             /* false: a wrapd mapping the table does not list */
	bool kept;                 /* its line was removed but the mapping is in use */
	bool changed;              /* its line changed while mapped; not yet applied */
	bool adopted;              /* found open at start */
	bool adopted_unlisted;     /* found open, and no table line names it */
	bool checked;              /* noauto: whether it is mapped is known */
	enum vol_state st;
	bool busy;                 /* a job for it is in flight */
	char backing[4096];
	char luks_uuid[37];
	int key_version;           /* -1 unknown */
	char last_error[WERR_MSG_MAX];
	char note[256];
	struct kvol *k;            /* Kubernetes mode: a discovered volume (agent/kmode.h) */
	/* An online rekey in progress (its header says so): resumed on the
	 * rekey worker while the mapping is open; never closed or erased
	 * while it runs. */
	bool rekey;                /* in progress (header or split table) */
	bool rekeying;             /* a JOB_REKEY runs for it */
	bool rekey_failed;         /* the last resume failed: retried on SIGHUP */
	bool rekey_wait_logged;    /* Kubernetes mode: "release waits" said once */
	uint64_t rekey_done, rekey_total;
	char rekey_source[8];      /* "header" | "table" | "resume" (the running job's callback) */
};

struct agent_opts;                 /* the command line (main.c), for SIGHUP */
struct agent {
	const char *config_path;
	const struct agent_opts *opts;
	struct agent_config cfg;
	char *token_file;          /* the Vault token file to watch, or NULL */
	struct alog *log;
	struct worker *w;

	struct vol *v;
	size_t n;

	int epfd, sigfd, timerfd, inofd, statusfd;
	int table_wd, token_wd;
	char *table_dir, *table_base;
	char *token_dir, *token_base;

	/* Vault, as the worker last saw it */
	bool vault_known, vault_ok;
	char vault_error[WERR_MSG_MAX];
	long long token_ttl;       /* -1 unknown */
	uint64_t upkeep_at_ms;     /* 0 = no upkeep timer */
	bool upkeep_busy;
	bool upkeep_failed;        /* the last upkeep failed: upkeep_at is a back-off */

	/* back-off for volumes waiting for Vault */
	unsigned retry_n;
	uint64_t retry_at_ms;      /* 0 = none scheduled */
	uint32_t rng;

	bool first_sent;           /* the first open job (even empty) is out */
	bool first_pass_done;
	bool stopping;
	unsigned long wakeups;     /* epoll returns (for tests and metrics) */
	struct agent_svc *svc;     /* hooks.c: notify, metrics, httpd (NULL before hooks_init) */
	struct worker *rw;         /* the rekey worker: online rekeys run here, never on a->w */
	volatile sig_atomic_t rekey_stop; /* set at SIGTERM/SIGINT: a rekey stops at a checkpoint */
	struct kmode *km;          /* Kubernetes mode (agent/kmode.h), NULL when off */
};

uint64_t agent_now_ms(void);

/* state.c: reconcile */
struct vol *agent_find(struct agent *a, const char *name);
/* A new volume (name copied, everything else zero), or NULL; the array may
 * move: earlier struct vol pointers are invalid afterwards. */
struct vol *agent_vol_add(struct agent *a, const char *name);
void agent_vol_remove(struct agent *a, struct vol *v);
/* Loads the table and reconciles with it (start, inotify, SIGHUP). */
int agent_table_reload(struct agent *a);
/* Submits jobs for what needs doing now. */
void agent_kick(struct agent *a);
/* Applies a finished job. */
void agent_job_done(struct agent *a, struct job *j);
/* The timer fired: retries and upkeep that are due. */
void agent_timer_due(struct agent *a);
/* The Vault token file changed (or SIGHUP): upkeep now, retry what waits. */
void agent_vault_changed(struct agent *a);
/* SIGHUP: failed volumes (and failed rekeys) get another try. */
void agent_retry_failed(struct agent *a);
/* The rekey worker posted progress (the loop, on its eventfd). */
void agent_rekey_progress(struct agent *a);
/* How long SIGTERM waits for a running rekey to reach its checkpoint (one
 * zone); past it the process exits and the rekey's guardian
 * process makes the mapping consistent. */
#define AGENT_REKEY_STOP_MS 60000
/* When the timerfd should fire next (0 = never). */
uint64_t agent_next_deadline(const struct agent *a);
void agent_free_vols(struct agent *a);
/* One-line summary: "12 open, 1 waiting for Vault". */
void agent_summary(const struct agent *a, char *buf, size_t n);
/* For /readyz: true once the first pass is done and no volume waits for
 * Vault, failed or is being opened (a retry); otherwise why (one line). */
bool agent_ready(const struct agent *a, char *why, size_t n);

/* table_watch.c: inotify on the table's directory (and the token file's) */
int table_watch_init(struct agent *a, struct werr *err);
/* Reads inotify events and acts on them (table reload, Vault upkeep). */
void table_watch_event(struct agent *a);
void table_watch_fini(struct agent *a);

/* status.c */
int status_listen(const char *path, int *fd, struct werr *err);
void status_accept(struct agent *a);
/* The agent's view as JSON text (malloc'ed). */
char *status_json(const struct agent *a);

/* loop.c: signals are blocked here (before the worker starts). */
int agent_loop_init(struct agent *a, struct werr *err);
int agent_run(struct agent *a, struct werr *err);

/* kube_mode.c: Kubernetes mode (agent/kmode.h); every call is a no-op when
 * a->km is NULL. Epoll tags KUBE_TAG_FIRST.. belong to it. */
#define KUBE_TAG_FIRST 50
#define KUBE_TAG_LAST 59
int kube_mode_init(struct agent *a, struct werr *err);
void kube_mode_loop_init(struct agent *a);
void kube_mode_event(struct agent *a, uint32_t tag);
void kube_mode_kick(struct agent *a);
void kube_mode_job_done(struct agent *a, struct job *j);
void kube_mode_open_item(struct agent *a, struct vol *v, const struct job_item *it);
uint64_t kube_mode_deadline(const struct agent *a);
void kube_mode_fini(struct agent *a);
struct json_t;
void kube_mode_vol_json(const struct vol *v, struct json_t *o);
struct json_t *kube_mode_json(const struct agent *a);
void kvol_free(struct kvol *k);
bool kvol_convert(const struct kvol *k);   /* convert_existing applies to it */
/* A discovered device wrapd never touches (foreign, not a block device):
 * reported, but not a failure of the agent (readiness). */
bool kvol_foreign(const struct kvol *k);
/* A release failed after the mapping was closed: the kube mode retries it
 * (SIGHUP's retry of failed volumes leaves it alone). */
bool kvol_erase_pending(const struct kvol *k);
void kjob_free(struct kjob *kj);
/* On the worker thread (agent/kube_jobs.c, agent/discovery.c). */
void kjob_run(struct worker *w, struct kjob *kj);
void discovery_prepare(struct worker *w, struct job_item *it);

/* main.c: SIGHUP */
void agent_reload(struct agent *a);

/* hooks.c: the agent's calls into notify/metrics/httpd, wired in one place.
 * Epoll tags >= 100 belong to the hooks (hooks_event).
 * hooks_init (after worker_start, before the first job): the notify socket,
 * the metrics registry, the HTTP endpoint on metrics_listen (a bad value or a
 * port in use fails the start). hooks_fini: after the worker stopped. */
struct metrics;
int hooks_init(struct agent *a, struct werr *err);
void hooks_fini(struct agent *a);
/* The agent's metrics registry (agent/metrics.h says how to add a metric),
 * or NULL before hooks_init. */
struct metrics *hooks_metrics(struct agent *a);
/* SIGHUP: RELOADING=1 before rereading, READY=1 after. */
void hooks_reloading(struct agent *a);
void hooks_reloaded(struct agent *a);
void hooks_loop_init(struct agent *a);
int hooks_timeout_ms(struct agent *a);     /* epoll_wait timeout, -1 = none */
void hooks_event(struct agent *a, uint32_t tag);
void hooks_tick(struct agent *a);
void hooks_ready(struct agent *a);         /* the first reconcile pass is done */
void hooks_status(struct agent *a);        /* the volumes' states changed */
void hooks_job_done(struct agent *a, const struct job *j); /* durations, Vault results */
void hooks_stopping(struct agent *a);
/* wrapd_rekey_progress_ratio{volume}: set while v->rekey, removed otherwise
 * (and when the volume goes: hooks_volume_gone). */
void hooks_rekey(struct agent *a, const struct vol *v);
void hooks_volume_gone(struct agent *a, const char *name);

#endif
