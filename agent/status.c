/*
 * The status socket: a Unix stream socket (mode 0600, owned by root) that
 * answers every connection with the agent's view as one JSON document and
 * closes it. The peer is checked with SO_PEERCRED: anyone but root gets a
 * one-line JSON refusal and nothing else.
 *
 * The document:
 *   {"agent": {"pid", "version", "ready" (first pass done), "healthy_volumes"
 *              (ready, and nothing waits for Vault or failed), "not_ready_because",
 *              "stopping", "summary", "volume_table",
 *              "vault": {"reachable", "error", "token_ttl", "upkeep_in_ms"},
 *              "retry_in_ms"},
 *    "volumes": [{"name", "state", "device", "header", "mapping", "backing", "uuid",
 *                 "key_version", "last_error", "note", "in_table", "noauto",
 *                 "adopted", "kept", "changed", "rekey"}]}
 * "rekey" is null, or {"in_progress": true, "running" (the agent resumes it
 * now), "done", "total" (bytes), "ratio", "source" ("header": the checkpoint
 * the agent found; "table": a split table without a readable header;
 * "resume": the running resume's progress), "failed" (the last resume failed:
 * retried on SIGHUP)}. agent.rekey_max_rate is in bytes/s (0: no limit).
 * "state" is one of: open, opening, waiting for Vault, failed, closing, closed.
 */
#include "agent/agent.h"

#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

int status_listen(const char *path, int *out, struct werr *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return werr_set(err, -ENAMETOOLONG, "status_socket %s: path too long", path);
	strcpy(sa.sun_path, path);
	_cleanup_free_ char *d = strdup(path);
	if (!d)
		return -ENOMEM;
	const char *dir = dirname(d);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return werr_set(err, -errno, "%s: cannot create the status socket's directory: %s",
				dir, strerror(errno));
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return werr_set(err, -EEXIST, "%s exists and is not a socket; remove it or set status_socket",
					path);
		/* A live agent answers; a stale socket from a crash does not. */
		_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return werr_set(err, -EADDRINUSE, "%s: another wrapd agent is running (its status socket answers)",
					path);
		unlink(path);
	}
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return werr_set(err, -errno, "socket: %s", strerror(errno));
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (r < 0)
		return werr_set(err, -e, "%s: cannot bind the status socket: %s", path, strerror(e));
	if (chmod(path, 0600) < 0 || listen(fd, 16) < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	*out = TAKE_FD(fd);
	return 0;
}

static json_t *jstr_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* null, or the volume's online rekey in progress. */
static json_t *rekey_json(const struct vol *v)
{
	if (!v->rekey)
		return json_null();
	json_t *r = json_object();
	json_object_set_new(r, "in_progress", json_true());
	json_object_set_new(r, "running", json_boolean(v->rekeying));
	json_object_set_new(r, "done", json_integer((json_int_t)v->rekey_done));
	json_object_set_new(r, "total", json_integer((json_int_t)v->rekey_total));
	json_object_set_new(r, "ratio", json_real(v->rekey_total ? (double)v->rekey_done /
								   (double)v->rekey_total : 0));
	json_object_set_new(r, "source", json_string(v->rekey_source[0] ? v->rekey_source : "header"));
	json_object_set_new(r, "failed", json_boolean(v->rekey_failed));
	return r;
}

static json_t *vol_json(const struct vol *v)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(v->name));
	json_object_set_new(o, "state", json_string(vol_state_name(v->st)));
	json_object_set_new(o, "device", jstr_or_null(v->device));
	json_object_set_new(o, "header", jstr_or_null(v->header));
	char map[160];
	snprintf(map, sizeof(map), "/dev/mapper/%s", v->name);
	bool mapped = v->st == VS_OPEN || v->st == VS_CLOSING;
	json_object_set_new(o, "mapping", mapped ? json_string(map) : json_null());
	json_object_set_new(o, "backing", jstr_or_null(mapped ? v->backing : NULL));
	json_object_set_new(o, "uuid", jstr_or_null(v->luks_uuid));
	json_object_set_new(o, "key_version",
			    v->key_version >= 0 ? json_integer(v->key_version) : json_null());
	json_object_set_new(o, "last_error", jstr_or_null(v->last_error));
	json_object_set_new(o, "note", jstr_or_null(v->note));
	json_object_set_new(o, "in_table", json_boolean(v->in_table));
	json_object_set_new(o, "noauto", json_boolean(v->noauto));
	json_object_set_new(o, "adopted", json_boolean(v->adopted));
	json_object_set_new(o, "kept", json_boolean(v->kept));
	json_object_set_new(o, "changed", json_boolean(v->changed));
	json_object_set_new(o, "rekey", rekey_json(v));
	if (v->k)
		kube_mode_vol_json(v, o);
	return o;
}

char *status_json(const struct agent *a)
{
	json_t *vault = json_object();
	json_object_set_new(vault, "reachable", a->vault_known ? json_boolean(a->vault_ok) : json_null());
	json_object_set_new(vault, "error", jstr_or_null(a->vault_error));
	json_object_set_new(vault, "token_ttl", a->token_ttl >= 0 ? json_integer(a->token_ttl) : json_null());
	uint64_t now = agent_now_ms();
	json_object_set_new(vault, "upkeep_in_ms",
			    a->upkeep_busy ? json_integer(0) :
			    a->upkeep_at_ms ? json_integer((json_int_t)(a->upkeep_at_ms > now ? a->upkeep_at_ms - now : 0))
					    : json_null());
	char sum[256];
	agent_summary(a, sum, sizeof(sum));
	json_t *ag = json_object();
	json_object_set_new(ag, "pid", json_integer(getpid()));
	json_object_set_new(ag, "version", json_string(PACKAGE_VERSION));
	json_object_set_new(ag, "ready", json_boolean(a->first_pass_done));
	char why[WERR_MSG_MAX + 64];
	json_object_set_new(ag, "healthy_volumes",
			    agent_ready(a, why, sizeof(why)) ? json_true() : json_false());
	json_object_set_new(ag, "not_ready_because", jstr_or_null(why));
	json_object_set_new(ag, "stopping", json_boolean(a->stopping));
	json_object_set_new(ag, "summary", json_string(sum));
	if (a->km)
		json_object_set_new(ag, "kubernetes", kube_mode_json(a));
	json_object_set_new(ag, "volume_table",
			    json_string(a->cfg.volume_table));
	json_object_set_new(ag, "vault", vault);
	json_object_set_new(ag, "rekey_max_rate", json_integer((json_int_t)a->cfg.rekey_max_rate));
	json_object_set_new(ag, "retry_in_ms",
			    a->retry_at_ms ? json_integer((json_int_t)(a->retry_at_ms > now ? a->retry_at_ms - now : 0))
					   : json_null());
	/* The agent's next wake-up of its own (retry, upkeep, Kubernetes
	 * retries): null when none is armed, as at idle. */
	uint64_t nd = agent_next_deadline(a);
	json_object_set_new(ag, "next_timer_in_ms",
			    nd ? json_integer((json_int_t)(nd > now ? nd - now : 0)) : json_null());
	json_t *vols = json_array();
	for (size_t i = 0; i < a->n; i++)
		json_array_append_new(vols, vol_json(&a->v[i]));
	json_t *root = json_object();
	json_object_set_new(root, "agent", ag);
	json_object_set_new(root, "volumes", vols);
	char *txt = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return txt;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

void status_accept(struct agent *a)
{
	for (;;) {
		_cleanup_close_ int c = accept4(a->statusfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return;
		struct ucred cr;
		socklen_t l = sizeof(cr);
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || cr.uid != 0) {
			alog(a->log, WLOG_WARN, NULL, NULL, "status",
			     "refused a status request from uid %d pid %d: root only",
			     l == sizeof(cr) ? (int)cr.uid : -1, l == sizeof(cr) ? (int)cr.pid : -1);
			static const char no[] = "{\"error\": \"permission denied: the wrapd status socket answers root only\"}\n";
			send_all(c, no, sizeof(no) - 1);
			continue;
		}
		/* A bounded blocking write: the peer is root and reads at once. */
		struct timeval tv = {.tv_sec = 2};
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		char *txt = status_json(a);
		if (txt) {
			send_all(c, txt, strlen(txt));
			send_all(c, "\n", 1);
			free(txt);
		}
	}
}
