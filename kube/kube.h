/*
 * kube: the Kubernetes API client of the wrapd agent, over libcurl and jansson.
 *
 * It owns:
 *   - the connection settings: in-cluster (KUBERNETES_SERVICE_HOST/PORT, the
 *     service-account token reread whenever the file changes, the CA file) or
 *     explicit (kube_api_url, kube_token_file, kube_ca_file; plain http only
 *     to a loopback host, vault_addr_is_loopback's rule);
 *   - the requests the agent makes: PersistentVolume create/get/delete/patch,
 *     list by label selector, Event create (kube/client.c);
 *   - the watch of the agent's own PVs on its own thread (kube/watch.c): list,
 *     paged (limit/continue), then watch from the list's resourceVersion with
 *     bookmarks and timeoutSeconds; 410 (HTTP or an ERROR event, or an
 *     expired continue token) → relist; 429/5xx and broken connections →
 *     back-off with jitter, never shorter than the server's Retry-After
 *     (bounded); events handed to the agent's loop through an eventfd;
 *   - the JSON side, pure and fuzzed (kube/json.c): the PV document and its
 *     name rule, the Event document, reading PVs, lists, Status objects and
 *     the newline-delimited watch stream. Every response is hostile: sizes are
 *     bounded, types checked, strings copied bounded and printable only.
 *
 * It knows nothing of volumes, devices or Vault: the agent decides what to
 * publish and what a PV's phase means for the device.
 */
#ifndef WRAPD_KUBE_H
#define WRAPD_KUBE_H

#include "common/common.h"

#include <jansson.h>

#define KUBE_MANAGED_BY_LABEL "app.kubernetes.io/managed-by"
#define KUBE_MANAGED_BY_VALUE "wrapd"
#define KUBE_NODE_LABEL "wrapd.io/node"
#define KUBE_PROVISIONED_BY_ANN "pv.kubernetes.io/provisioned-by"
#define KUBE_PROVISIONED_BY_VALUE "wrapd.io/wrapd"
#define KUBE_LUKS_UUID_ANN "wrapd.io/luks-uuid"
#define KUBE_SELECTOR KUBE_MANAGED_BY_LABEL "=" KUBE_MANAGED_BY_VALUE

#define KUBE_DEFAULT_TOKEN_FILE "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define KUBE_DEFAULT_CA_FILE "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

#define KUBE_LINE_MAX (4u << 20)      /* one watch event */
#define KUBE_RESPONSE_MAX (64u << 20) /* one response body (a list) */
#define KUBE_LIST_MAX 100000          /* items in one list (all its pages) */
#define KUBE_PAGE_LIMIT 500           /* items per page of a list (limit=) */

/* ---- names ------------------------------------------------------------------ */

bool kube_dns1123_label(const char *s);     /* [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63 */
bool kube_dns1123_subdomain(const char *s); /* labels joined by '.', <= 253 */
/* The PV name for (node, volume): "wrapd-<node>-<volume>" when that is a valid
 * DNS-1123 subdomain, else "wrapd-<up to 40 chars of both, made
 * label-safe>-<10 hex of sha256(node "/" volume)>". Stable. */
void kube_pv_name(const char *node, const char *volume, char out[254]);
/* A label value for s: s itself when it is a valid label value (<= 63 of
 * [A-Za-z0-9._-], alphanumeric at both ends), else a safe prefix plus
 * 10 hex of sha256(s). */
void kube_label_value(const char *s, char out[64]);

/* ---- documents we build ------------------------------------------------------- */

struct kube_pv_spec {
	const char *node;
	const char *volume;            /* /dev/mapper/<volume> */
	uint64_t capacity_bytes;
	const char *storage_class;
	bool block;                    /* volumeMode Block (else Filesystem with fs_type) */
	const char *fs_type;
	bool retain;                   /* persistentVolumeReclaimPolicy Retain (else Delete) */
	const char *luks_uuid;         /* annotation wrapd.io/luks-uuid */
};
/* The PersistentVolume document (new reference) or NULL (ENOMEM). */
json_t *kube_pv_build(const struct kube_pv_spec *s);

struct kube_event_spec {
	const char *ns;                /* where the Event lives */
	const char *pv_name, *pv_uid;  /* involvedObject (uid may be NULL/"") */
	bool warning;                  /* type Warning, else Normal */
	const char *reason;            /* CamelCase */
	const char *message;
	const char *node;              /* source.host and reportingInstance */
	time_t now;
	uint64_t unique;               /* makes metadata.name unique */
};
json_t *kube_event_build(const struct kube_event_spec *s);

/* ---- what we read ---------------------------------------------------------------- */

enum kube_phase {
	KUBE_PHASE_NONE = 0, KUBE_PHASE_PENDING, KUBE_PHASE_AVAILABLE, KUBE_PHASE_BOUND,
	KUBE_PHASE_RELEASED, KUBE_PHASE_FAILED, KUBE_PHASE_OTHER,
};
const char *kube_phase_name(enum kube_phase p);
enum kube_reclaim { KUBE_RECLAIM_OTHER = 0, KUBE_RECLAIM_DELETE, KUBE_RECLAIM_RETAIN };

struct kube_pv {
	char name[254];
	char uid[64];
	char resource_version[64];
	enum kube_phase phase;
	enum kube_reclaim reclaim;
	bool managed;                  /* label managed-by = wrapd */
	bool provisioned_by_us;        /* the provisioned-by annotation is ours */
	bool deleting;                 /* metadata.deletionTimestamp is set */
	bool block;                    /* spec.volumeMode Block */
	char node_label[64];           /* label wrapd.io/node, "" none */
	char local_path[256];          /* spec.local.path, "" none */
	char volume[128];              /* <volume> of /dev/mapper/<volume>, "" otherwise */
	char luks_uuid[40];            /* annotation wrapd.io/luks-uuid, "" none */
	char claim[328];               /* "<ns>/<name>" of spec.claimRef, "" none */
	uint64_t capacity_bytes;       /* spec.capacity.storage when a plain integer or Ki..Ei/K..E, else 0 */
};
/* Reads a PV object. -EBADMSG (err says why) when it is not one. */
int kube_pv_parse(json_t *obj, struct kube_pv *pv, struct werr *err);

struct kube_status {
	long code;                     /* 0 when absent */
	char reason[64];
	char message[256];             /* printable, truncated */
};
/* Reads a Status object from a body (any bytes). -EBADMSG when it is not one. */
int kube_status_parse(const char *body, size_t len, struct kube_status *st);
/* A Status already parsed. */
int kube_status_from_json(json_t *obj, struct kube_status *st);

/* A PV list: items (malloc'ed array, n entries) and metadata.resourceVersion.
 * Items that are not PVs are skipped and counted in *skipped (may be NULL). */
int kube_pv_list_parse(const char *body, size_t len, struct kube_pv **items, size_t *n,
		       char rv[64], size_t *skipped, struct werr *err);
/* One page of a list asked for with limit=: the same, plus metadata.continue
 * in cont ("" on the last page). A token that is not printable ASCII or is
 * longer than KUBE_CONTINUE_MAX - 1 is refused (-EBADMSG). */
#define KUBE_CONTINUE_MAX 4096
int kube_pv_list_page_parse(const char *body, size_t len, struct kube_pv **items, size_t *n,
			    char rv[64], char cont[KUBE_CONTINUE_MAX], size_t *skipped,
			    struct werr *err);

enum kube_event_type {
	KUBE_EV_ADDED = 1, KUBE_EV_MODIFIED, KUBE_EV_DELETED, KUBE_EV_BOOKMARK, KUBE_EV_ERROR,
};
struct kube_watch_event {
	enum kube_event_type type;
	char rv[64];                   /* the object's resourceVersion ("" for ERROR) */
	struct kube_pv pv;             /* ADDED/MODIFIED/DELETED */
	struct kube_status status;     /* ERROR */
};
/* One line of a watch stream. -EBADMSG when it is not a watch event. */
int kube_watch_event_parse(const char *line, size_t len, struct kube_watch_event *ev,
			   struct werr *err);

/* Splits a byte stream into lines (the watch's write callback feeds it). */
struct kube_lines {
	char *buf;
	size_t len, cap;
	size_t max;                    /* longest line accepted (0 = KUBE_LINE_MAX) */
};
typedef int (*kube_line_fn)(void *arg, const char *line, size_t len);
/* Calls fn for each complete, non-empty line (without the '\n'); stops at the
 * first fn error and returns it. -EMSGSIZE for a line longer than max. */
int kube_lines_feed(struct kube_lines *lb, const char *data, size_t n, kube_line_fn fn,
		    void *arg);
void kube_lines_reset(struct kube_lines *lb);
void kube_lines_free(struct kube_lines *lb);

/* ---- the client ----------------------------------------------------------------------- */

struct kube_client_opts {
	const char *api_url;           /* NULL/"" = https://$KUBERNETES_SERVICE_HOST:$..._PORT */
	const char *token_file;        /* NULL = KUBE_DEFAULT_TOKEN_FILE */
	const char *ca_file;           /* NULL = KUBE_DEFAULT_CA_FILE (if it exists) */
	const char *(*getenv)(const char *name); /* NULL = getenv (tests pass their own) */
	const struct wlog *log;
	long timeout_ms;               /* one request; 0 = 30 s */
};
/* The API server's base URL from the options and the environment. Refuses
 * plain http to a non-loopback host and a missing in-cluster environment. */
int kube_resolve_url(const struct kube_client_opts *o, char **url, struct werr *err);

struct kube_client;
int kube_client_new(struct kube_client **out, const struct kube_client_opts *o,
		    struct werr *err);
void kube_client_free(struct kube_client *kc);
const char *kube_client_url(const struct kube_client *kc);
/* Requests made since the client was created (all kinds). */
unsigned long kube_client_requests(const struct kube_client *kc);
/* The Retry-After of the last answer, in seconds (0: none, or no answer).
 * The API server sends it with 429 (priority and fairness, max in flight)
 * and with errors whose Status has details.retryAfterSeconds. A caller that
 * retries waits at least this long (bounded by its own maximum). */
long kube_client_retry_after(const struct kube_client *kc);

/* One request: path starts with '/'; body may be NULL; content_type NULL =
 * application/json. *status is the HTTP status (0: no answer); *resp is the
 * parsed JSON body or NULL. Returns 0 when an HTTP answer came, whatever its
 * status; < 0 (err set) for transport errors and bad bodies. */
int kube_request(struct kube_client *kc, const char *method, const char *path, json_t *body,
		 const char *content_type, long *status, json_t **resp, struct werr *err);

/* Creates a PV. A 409 is success when the existing PV is ours (managed-by
 * wrapd and the same node label): *existed is then true and *pv holds it. */
int kube_pv_create(struct kube_client *kc, json_t *doc, struct kube_pv *pv, bool *existed,
		   struct werr *err);
/* -ENOENT when there is none. */
int kube_pv_get(struct kube_client *kc, const char *name, struct kube_pv *pv, struct werr *err);
/* A 404 is success (already gone). uid: only delete that object (precondition), may be NULL. */
int kube_pv_delete(struct kube_client *kc, const char *name, const char *uid, struct werr *err);
/* JSON merge patch. */
int kube_pv_patch(struct kube_client *kc, const char *name, json_t *patch, struct werr *err);
/* Lists the PVs matching selector (NULL = KUBE_SELECTOR). */
int kube_pv_list(struct kube_client *kc, const char *selector, struct kube_pv **items, size_t *n,
		 char rv[64], struct werr *err);
int kube_event_post(struct kube_client *kc, const struct kube_event_spec *e, struct werr *err);

/* ---- the watch (its own thread) ---------------------------------------------------------- */

enum kube_watch_kind {
	KUBE_W_SYNC = 1,               /* a (re)list: items are every PV that exists now */
	KUBE_W_EVENT,                  /* ADDED/MODIFIED/DELETED of one PV */
	KUBE_W_STATE,                  /* connected or not (msg says why not) */
};
struct kube_watch_item {
	enum kube_watch_kind kind;
	enum kube_event_type ev;       /* KUBE_W_EVENT */
	struct kube_pv pv;             /* KUBE_W_EVENT */
	struct kube_pv *items;         /* KUBE_W_SYNC (owned) */
	size_t n;
	bool ok;                       /* KUBE_W_STATE */
	char msg[WERR_MSG_MAX];
	struct kube_watch_item *next;
};
void kube_watch_item_free(struct kube_watch_item *it);

struct kube_watch_opts {
	struct kube_client_opts client;
	const char *selector;          /* NULL = KUBE_SELECTOR */
	long timeout_seconds;          /* the watch's timeoutSeconds; 0 = 600 */
	long backoff_min_ms, backoff_max_ms; /* 0 = 500 ms, 30 s */
	long page_limit;               /* the list's limit= per page; 0 = KUBE_PAGE_LIMIT */
	long retry_after_max_ms;       /* a Retry-After is honoured up to this; 0 = 30 s */
};
struct kube_watch;
int kube_watch_start(struct kube_watch **out, const struct kube_watch_opts *o, struct werr *err);
/* Readable (an eventfd) when items are waiting. */
int kube_watch_fd(const struct kube_watch *kw);
/* The waiting items in order (a list through ->next); clears the eventfd. */
struct kube_watch_item *kube_watch_take(struct kube_watch *kw);
/* Lists again now (the agent's own request). */
void kube_watch_relist(struct kube_watch *kw);
/* Stops the thread (it may be blocked in a transfer: woken at once) and frees. */
void kube_watch_stop(struct kube_watch *kw);

#endif
