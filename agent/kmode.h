/*
 * The agent's Kubernetes mode, internal to agent/ (issue 12):
 *   agent/kube_mode.c      the glue: start, the loop's fds, the watch's items,
 *                          the decisions (publish, reconcile, erase, Events),
 *                          status JSON;
 *   agent/discovery.c      discovery_dir (inotify, names, entries appearing
 *                          and vanishing) and, on the worker, what a device
 *                          holds (wrapd / blank → format / foreign);
 *   agent/kubelet_watch.c  which PV a pod uses (kubelet folders by inotify,
 *                          mounts from /proc/self/mountinfo by EPOLLPRI);
 *   agent/kube_jobs.c      the worker side: PV create/delete, Events, the
 *                          release flow (close, crypto-erase, format, open).
 * The API client itself is kube/ (kube/kube.h).
 */
#ifndef WRAPD_AGENT_KMODE_H
#define WRAPD_AGENT_KMODE_H

#include "agent/agent.h"
#include "kube/kube.h"

enum kclass {
	KC_UNKNOWN = 0,
	KC_WRAPD,                  /* a wrapd volume: opened */
	KC_BLANK,                  /* nothing libblkid knows: formatted, then opened */
	KC_FOREIGN,                /* a file system, partition table, someone's LUKS: never touched */
	KC_NOT_BLOCK,              /* the entry is not a block device */
};
const char *kclass_name(int c);

/* Per discovered volume (struct vol's k). */
struct kvol {
	char path[4096];           /* discovery_dir/<name> */
	bool convert;              /* convert_existing = yes when it was discovered */
	bool gone;                 /* the entry vanished */
	int kclass;
	char kdetail[512];         /* foreign: what it holds and the command that converts it */
	bool foreign_said;
	char pv_name[254];
	char pv_phase[16];         /* as last seen, "" none */
	bool job;                  /* a kube job for this volume is in flight */
	char await_gone_uid[64];   /* a PV we deleted: wait for it to go before publishing */
	char refused_uid[64];      /* EraseRefused already said for this PV */
	bool in_use;               /* a pod uses it (kubelet folders + mounts) */
	char in_use_by[256];
	uint64_t released_ms;      /* when its PV was seen Released (for the figure) */
	uint64_t last_erase_ms;    /* Released → published again, last time */
	unsigned fails;
	uint64_t retry_at_ms;      /* 0 = none */
	char last_kube_error[WERR_MSG_MAX];
	/* A release that failed after the close (erase, format or open): the
	 * volume is failed, its PV stays Released, and the release is tried
	 * again on the back-off until it succeeds. */
	bool erase_pending;
	char erase_said[WERR_MSG_MAX]; /* the EraseFailed Event posted for this failure, "" none */
};

enum kop {
	KOP_PUBLISH = 1,           /* create the PV (409 on ours = fine) */
	KOP_DELETE,                /* delete a PV (uid precondition) */
	KOP_EVENT,                 /* post an Event only */
	KOP_ERASE,                 /* the release flow */
};

struct kjob {
	enum kop op;
	struct kube_client *kc;
	/* in */
	char vol[128], device[4096], pv_name[254], pv_uid[64], luks_uuid[40];
	struct kube_pv_spec spec;  /* strings point into kjob/kmode (alive until done) */
	char node[254], ns[64];
	bool ev, ev_warning;       /* an Event to post after the op (KOP_EVENT: only that) */
	char ev_reason[32], ev_message[1024];
	uint64_t ev_unique;
	/* out */
	int rc;
	char msg[WERR_MSG_MAX];
	bool again;                /* not an error: the old PV is still there */
	struct kube_pv pv;         /* KOP_PUBLISH: what the server holds */
	bool existed;
	char new_uuid[40];         /* KOP_ERASE */
	bool mapped;               /* KOP_ERASE: the mapping exists at the end */
	bool in_use;               /* KOP_ERASE: refused, something holds it */
	uint64_t erase_ms;         /* close → open again */
	long retry_after_s;        /* the API server's Retry-After for the failed request */
};
void kjob_free(struct kjob *kj);

struct kmode {
	char node[254];
	char ns[64];               /* event_namespace */
	char node_label[64];
	struct kube_client *kc;    /* used on the worker thread only */
	struct kube_watch *kw;
	bool synced;               /* a list has come in */
	bool watch_ok;
	char watch_msg[WERR_MSG_MAX];
	struct kube_pv *pvs;       /* this node's wrapd PVs as last seen */
	size_t npvs;
	char (*handled)[64];       /* orphan PV uids already acted on */
	size_t nhandled;
	uint64_t seq;              /* Event name suffixes */
	/* discovery + kubelet */
	int ino;                   /* one inotify fd for both */
	int disc_wd;
	int *kl_wd;                /* kubelet folder watches */
	size_t nkl_wd;
	int mountfd;               /* /proc/self/mountinfo, EPOLLPRI */
	char bad_names[8][256];    /* discovery entries refused (said once) */
	size_t nbad;
};

/* kube_mode.c */
struct kube_pv *kmode_find_pv(struct kmode *km, const char *name);
void kmode_submit(struct agent *a, struct vol *v, struct kjob *kj);
struct kjob *kjob_new(struct agent *a, enum kop op);
void kmode_event(struct agent *a, struct vol *v, const char *pv_name, bool warning,
		 const char *reason, const char *fmt, ...) _printf_(6, 7);

/* kube_jobs.c: posts one Event now (on the worker thread). */
int kmode_post_event(struct kmode *km, const char *pv_name, const char *pv_uid, bool warning,
		     const char *reason, const char *message, uint64_t unique, struct werr *err);

/* discovery.c */
int discovery_init(struct agent *a, struct werr *err);
void discovery_scan(struct agent *a);
bool discovery_wd(const struct agent *a, int wd);

/* kubelet_watch.c */
int kubelet_watch_init(struct agent *a, struct werr *err);
void kubelet_watch_scan(struct agent *a);  /* rescan folders + mounts, update in_use */
void kubelet_mounts_event(struct agent *a);
/* The volume left: its wrapd_volume_in_use series goes. */
void kubelet_metric_remove(struct agent *a, const char *volume);


#endif
