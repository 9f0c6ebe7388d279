/*
 * kube/ against the Kubernetes API-server double (tests/kube-double/),
 * started by host_kube_client.sh: KUBE_URL, KUBE_TOKEN_FILE are set.
 * The double's control API (/_double/...) is called through kube_request.
 *
 * Waits are bounded (the watch's items arrive through its eventfd; a case
 * fails after 30 s without them), never assertions on durations.
 */
#include "kube/kube_int.h"
#include "tests/lib/unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>

static struct kube_client *kc;
static struct kube_client_opts opts;

static json_t *ctl(const char *method, const char *path, const char *body)
{
	char p[256];
	snprintf(p, sizeof(p), "/_double/%s", path);
	json_error_t je;
	json_t *b = body ? json_loads(body, 0, &je) : NULL;
	long st;
	json_t *resp;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(kube_request(kc, method, p, b, NULL, &st, &resp, &e), 0);
	json_decref(b);
	if (st != 200)
		fail_msg("control %s %s: %ld", method, path, st);
	return resp;
}

static json_t *spec_doc(const char *node, const char *vol)
{
	struct kube_pv_spec s = {.node = node, .volume = vol, .capacity_bytes = 1u << 30,
				 .storage_class = "encrypted", .fs_type = "ext4",
				 .luks_uuid = "11111111-2222-4333-8444-555555555555"};
	return kube_pv_build(&s);
}

static int setup(void **state)
{
	(void)state;
	opts = (struct kube_client_opts){.api_url = getenv("KUBE_URL"),
					  .token_file = getenv("KUBE_TOKEN_FILE")};
	assert_non_null(opts.api_url);
	struct werr e;
	werr_clear(&e);
	return kube_client_new(&kc, &opts, &e);
}

static int teardown(void **state)
{
	(void)state;
	kube_client_free(kc);
	return 0;
}

static void test_pv_crud(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	json_t *d = spec_doc("node-a", "crud");
	struct kube_pv pv, pv2;
	bool existed = true;
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
	assert_false(existed);
	assert_string_equal(pv.name, "wrapd-node-a-crud");
	assert_true(pv.uid[0] && pv.resource_version[0]);
	assert_true(pv.managed && pv.provisioned_by_us);
	/* Again: 409 AlreadyExists, and it is ours: not an error. */
	assert_int_equal(kube_pv_create(kc, d, &pv2, &existed, &e), 0);
	assert_true(existed);
	assert_string_equal(pv2.uid, pv.uid);
	json_decref(d);

	assert_int_equal(kube_pv_get(kc, "wrapd-node-a-crud", &pv2, &e), 0);
	assert_string_equal(pv2.volume, "crud");
	assert_true(pv2.capacity_bytes == 1u << 30);
	assert_int_equal(pv2.phase, KUBE_PHASE_AVAILABLE); /* the PV controller's */
	json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", "extra", "x");
	assert_int_equal(kube_pv_patch(kc, "wrapd-node-a-crud", patch, &e), 0);
	json_decref(patch);
	assert_int_equal(kube_pv_get(kc, "no-such-pv", &pv2, &e), -ENOENT);

	/* A delete for another object of that name (uid precondition) is refused. */
	werr_clear(&e);
	assert_int_equal(kube_pv_delete(kc, "wrapd-node-a-crud", "00000000-0000-0000-0000-000000000000", &e),
			 -ESTALE);
	assert_non_null(strstr(e.msg, "409"));
	assert_int_equal(kube_pv_delete(kc, "wrapd-node-a-crud", pv.uid, &e), 0);
	int r = 0;
	for (int i = 0; i < 300 && (r = kube_pv_get(kc, "wrapd-node-a-crud", &pv2, &e)) == 0; i++)
		usleep(100000); /* the pv-protection finalizer goes first */
	assert_int_equal(r, -ENOENT);
	assert_int_equal(kube_pv_delete(kc, "wrapd-node-a-crud", NULL, &e), 0); /* 404: gone */
}

static void test_409_not_ours(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	/* Someone else's PV under our name. */
	json_t *d = spec_doc("node-b", "taken");
	json_object_set_new(json_object_get(json_object_get(d, "metadata"), "labels"),
			    KUBE_NODE_LABEL, json_string("another-node"));
	struct kube_pv pv;
	bool existed;
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
	json_decref(d);
	d = spec_doc("node-b", "taken");
	werr_clear(&e);
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "not this node's"));
	json_decref(d);
}

static void test_list_and_event(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	const char *vols[] = {"l1", "l2"};
	struct kube_pv pv;
	bool existed;
	for (size_t i = 0; i < 2; i++) {
		json_t *d = spec_doc("node-l", vols[i]);
		assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
		json_decref(d);
	}
	json_t *d = spec_doc("node-other", "l3");
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
	json_decref(d);
	struct kube_pv *items;
	size_t n;
	char rv[64];
	assert_int_equal(kube_pv_list(kc, KUBE_SELECTOR "," KUBE_NODE_LABEL "=node-l", &items, &n, rv, &e), 0);
	assert_int_equal(n, 2);
	assert_true(rv[0]);
	free(items);

	struct kube_event_spec es = {.ns = "default", .pv_name = "wrapd-node-l-l1", .pv_uid = pv.uid,
				     .warning = true, .reason = "EraseRefused", .message = "a test",
				     .node = "node-l", .now = time(NULL), .unique = 7};
	assert_int_equal(kube_event_post(kc, &es, &e), 0);
	long st;
	json_t *resp;
	assert_int_equal(kube_request(kc, "GET", "/api/v1/namespaces/default/events", NULL, NULL, &st, &resp, &e), 0);
	assert_int_equal(st, 200);
	char *txt = json_dumps(resp, 0);
	assert_non_null(strstr(txt, "EraseRefused"));
	free(txt);
	json_decref(resp);
}

/* ---- the watch ---- */

static struct kube_watch *kw;

static struct kube_watch_item *wait_item(enum kube_watch_kind kind)
{
	for (int i = 0; i < 300; i++) {
		struct pollfd p = {.fd = kube_watch_fd(kw), .events = POLLIN};
		poll(&p, 1, 100);
		struct kube_watch_item *items = kube_watch_take(kw), *found = NULL;
		for (struct kube_watch_item *it = items, *next; it; it = next) {
			next = it->next;
			it->next = NULL;
			if (!found && it->kind == kind)
				found = it;
			else
				kube_watch_item_free(it);
		}
		if (found)
			return found;
	}
	fail_msg("no watch item of kind %d within 30 s", kind);
	return NULL;
}

static int count_requests(const char *path_part, const char *query_part, long code)
{
	json_t *log = ctl("GET", "log", NULL);
	json_t *reqs = json_object_get(log, "requests");
	size_t i;
	json_t *r;
	int n = 0;
	json_array_foreach(reqs, i, r) {
		const char *p = json_string_value(json_object_get(r, "path"));
		const char *q = json_string_value(json_object_get(r, "query"));
		json_t *c = json_object_get(r, "code");
		if (p && strstr(p, path_part) && (!query_part || (q && strstr(q, query_part))) &&
		    (!code || (json_is_integer(c) && json_integer_value(c) == code)))
			n++;
	}
	json_decref(log);
	return n;
}

/* The double's open watch whose query names node (new reference), or NULL. */
static json_t *watch_of(const char *node)
{
	json_t *w = ctl("GET", "watches", NULL), *found = NULL;
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(w, "watches"), i, x) {
		const char *q = json_string_value(json_object_get(x, "query"));
		if (q && strstr(q, node))
			found = json_incref(x);
	}
	json_decref(w);
	return found;
}

/* Until the double holds the node's watch (logged when it starts). */
static void wait_watch(const char *node)
{
	for (int i = 0; i < 300; i++) {
		json_t *w = watch_of(node);
		json_decref(w);
		if (w)
			return;
		usleep(100000);
	}
	fail_msg("the double holds no watch for %s within 30 s", node);
}

static void start_watch(const char *node)
{
	char sel[128];
	snprintf(sel, sizeof(sel), KUBE_SELECTOR "," KUBE_NODE_LABEL "=%s", node);
	struct kube_watch_opts o = {.client = opts, .selector = sel, .backoff_min_ms = 100,
				    .backoff_max_ms = 400};
	struct werr e;
	werr_clear(&e);
	assert_int_equal(kube_watch_start(&kw, &o, &e), 0);
}

static void test_watch_events_and_relist(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	start_watch("node-w");
	struct kube_watch_item *it = wait_item(KUBE_W_SYNC);
	assert_int_equal(it->n, 0);
	kube_watch_item_free(it);

	json_t *d = spec_doc("node-w", "w1");
	struct kube_pv pv;
	bool existed;
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
	json_decref(d);
	it = wait_item(KUBE_W_EVENT);
	assert_int_equal(it->ev, KUBE_EV_ADDED);
	assert_string_equal(it->pv.name, "wrapd-node-w-w1");
	kube_watch_item_free(it);

	/* Compaction with the watch expired (an ERROR 410 event): relist. */
	wait_watch("node-w");
	int lists = count_requests("/api/v1/persistentvolumes", "labelSelector", 0) -
		    count_requests("/api/v1/persistentvolumes", "watch=true", 0);
	json_decref(ctl("POST", "compact", "{\"expire_watches\": true}"));
	it = wait_item(KUBE_W_SYNC);
	assert_int_equal(it->n, 1);
	assert_string_equal(it->items[0].name, "wrapd-node-w-w1");
	kube_watch_item_free(it);
	wait_watch("node-w");
	int lists2 = count_requests("/api/v1/persistentvolumes", "labelSelector", 0) -
		     count_requests("/api/v1/persistentvolumes", "watch=true", 0);
	assert_int_equal(lists2, lists + 1);

	/* The double restarts (watches cut, history gone, rv jumps): the watch
	 * from the old rv gets 410 and the client lists again. */
	json_decref(ctl("POST", "restart", "{\"rv_jump\": 1000}"));
	it = wait_item(KUBE_W_SYNC);
	assert_int_equal(it->n, 1);
	kube_watch_item_free(it);

	/* Changes after the relist still arrive. */
	json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", "touched", "1");
	assert_int_equal(kube_pv_patch(kc, "wrapd-node-w-w1", patch, &e), 0);
	json_decref(patch);
	it = wait_item(KUBE_W_EVENT);
	assert_int_equal(it->ev, KUBE_EV_MODIFIED);
	kube_watch_item_free(it);
	kube_watch_stop(kw);
	kw = NULL;
}

static void test_watch_backoff_on_429(void **state)
{
	(void)state;
	json_decref(ctl("POST", "log/clear", NULL));
	/* The next two lists answer 429 and one more 503. */
	json_decref(ctl("POST", "fault", "{\"status\": 429, \"count\": 2, \"path\": \"/api/v1/persistentvolumes\", \"method\": \"GET\", \"watch\": false, \"retry_after\": 1}"));
	json_decref(ctl("POST", "fault", "{\"status\": 503, \"count\": 1, \"path\": \"/api/v1/persistentvolumes\", \"method\": \"GET\", \"watch\": false}"));
	start_watch("node-f");
	struct kube_watch_item *it = wait_item(KUBE_W_SYNC);
	kube_watch_item_free(it);
	assert_int_equal(count_requests("/api/v1/persistentvolumes", NULL, 429), 2);
	assert_int_equal(count_requests("/api/v1/persistentvolumes", NULL, 503), 1);
	kube_watch_stop(kw);
	kw = NULL;
}

static void start_watch_opts(const char *node, long page_limit, long ra_max_ms)
{
	char sel[128];
	snprintf(sel, sizeof(sel), KUBE_SELECTOR "," KUBE_NODE_LABEL "=%s", node);
	struct kube_watch_opts o = {.client = opts, .selector = sel, .backoff_min_ms = 100,
				    .backoff_max_ms = 400, .page_limit = page_limit,
				    .retry_after_max_ms = ra_max_ms};
	struct werr e;
	werr_clear(&e);
	assert_int_equal(kube_watch_start(&kw, &o, &e), 0);
}

/* The list is paged: limit=2 over 5 PVs is 3 pages; a continue token that
 * expired (410) starts the list again from its first page. */
static void test_watch_paging(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	char vol[16];
	struct kube_pv pv;
	bool existed;
	for (int i = 0; i < 5; i++) {
		snprintf(vol, sizeof(vol), "p%d", i);
		json_t *d = spec_doc("node-p", vol);
		assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
		json_decref(d);
	}
	json_decref(ctl("POST", "log/clear", NULL));
	start_watch_opts("node-p", 2, 0);
	struct kube_watch_item *it = wait_item(KUBE_W_SYNC);
	assert_int_equal(it->n, 5);
	for (size_t i = 0; i < it->n; i++) {
		snprintf(vol, sizeof(vol), "p%d", (int)i);
		assert_string_equal(it->items[i].volume, vol);
	}
	kube_watch_item_free(it);
	/* (the watch that follows has no limit=) */
	int pages = count_requests("/api/v1/persistentvolumes", "limit=2", 0);
	int conts = count_requests("/api/v1/persistentvolumes", "continue=", 0);
	print_message("# paging: 5 PVs, limit=2: %d list requests, %d with continue=\n", pages, conts);
	assert_int_equal(pages, 3);
	assert_int_equal(conts, 2);
	wait_watch("node-p");
	kube_watch_stop(kw);
	kw = NULL;

	/* The second page's token has expired: 410, then the first page again. */
	json_decref(ctl("POST", "log/clear", NULL));
	json_decref(ctl("POST", "fault", "{\"status\": 410, \"count\": 1, \"path\": \"/api/v1/persistentvolumes\", \"query\": \"continue=\"}"));
	start_watch_opts("node-p", 2, 0);
	it = wait_item(KUBE_W_SYNC);
	assert_int_equal(it->n, 5);
	kube_watch_item_free(it);
	pages = count_requests("/api/v1/persistentvolumes", "limit=2", 0);
	int firsts = pages - count_requests("/api/v1/persistentvolumes", "continue=", 0);
	print_message("# paging: a 410 on the continue token: %d list requests, %d of them first pages\n",
		      pages, firsts);
	assert_int_equal(count_requests("/api/v1/persistentvolumes", NULL, 410), 1);
	assert_int_equal(pages, 5); /* p1, p2 (410), p1, p2, p3 */
	assert_int_equal(firsts, 2);
	kube_watch_stop(kw);
	kw = NULL;

	/* Expired twice in one list: back-off, then a whole list. */
	json_decref(ctl("POST", "log/clear", NULL));
	json_decref(ctl("POST", "fault", "{\"status\": 410, \"count\": 2, \"path\": \"/api/v1/persistentvolumes\", \"query\": \"continue=\"}"));
	start_watch_opts("node-p", 2, 0);
	it = wait_item(KUBE_W_SYNC);
	assert_int_equal(it->n, 5);
	kube_watch_item_free(it);
	assert_int_equal(count_requests("/api/v1/persistentvolumes", NULL, 410), 2);
	kube_watch_stop(kw);
	kw = NULL;
}

/* The time (the double's log) of request number idx among those matching. */
static double request_time(const char *path_part, const char *query_part, int idx)
{
	json_t *log = ctl("GET", "log", NULL);
	size_t i;
	json_t *r;
	int n = 0;
	double t = -1;
	json_array_foreach(json_object_get(log, "requests"), i, r) {
		const char *p = json_string_value(json_object_get(r, "path"));
		const char *q = json_string_value(json_object_get(r, "query"));
		if (p && strstr(p, path_part) && (!query_part || (q && strstr(q, query_part))) &&
		    n++ == idx) {
			t = json_number_value(json_object_get(r, "time"));
			break;
		}
	}
	json_decref(log);
	return t;
}

/* 429 from the API server's priority-and-fairness filter (plain text,
 * Retry-After): the next try waits at least Retry-After, bounded by
 * retry_after_max_ms. The client reports it for the agent's own retries. */
static void test_retry_after(void **state)
{
	(void)state;
	json_decref(ctl("POST", "log/clear", NULL));
	json_decref(ctl("POST", "fault", "{\"apf\": true, \"retry_after\": 2, \"count\": 1, \"path\": \"/api/v1/persistentvolumes\", \"method\": \"GET\", \"watch\": false}"));
	start_watch_opts("node-r", 0, 0);
	struct kube_watch_item *it = wait_item(KUBE_W_SYNC);
	kube_watch_item_free(it);
	/* This watch's lists only (a request of an earlier test may be logged late). */
	double t0 = request_time("/api/v1/persistentvolumes", "node%3Dnode-r&limit=", 0);
	double t1 = request_time("/api/v1/persistentvolumes", "node%3Dnode-r&limit=", 1);
	print_message("# Retry-After 2: the list was tried again %.2f s after the 429 (back-off alone: <= 0.4 s)\n",
		      t1 - t0);
	if (!(t0 > 0 && t1 - t0 >= 2.0)) {
		json_t *log = ctl("GET", "log", NULL);
		char *txt = json_dumps(log, JSON_COMPACT);
		print_message("# the double's log: %s\n", txt);
		free(txt);
		json_decref(log);
	}
	assert_int_equal(count_requests("/api/v1/persistentvolumes", NULL, 429), 1);
	assert_true(t0 > 0 && t1 - t0 >= 2.0);
	kube_watch_stop(kw);
	kw = NULL;

	/* A Retry-After of an hour is bounded (here by 1 s). */
	json_decref(ctl("POST", "log/clear", NULL));
	json_decref(ctl("POST", "fault", "{\"apf\": true, \"retry_after\": 3600, \"count\": 1, \"path\": \"/api/v1/persistentvolumes\", \"watch\": true}"));
	start_watch_opts("node-r", 0, 1000);
	it = wait_item(KUBE_W_SYNC);
	kube_watch_item_free(it);
	/* The watch after the 429: within 30 s, not an hour. */
	t1 = -1;
	for (int i = 0; i < 300 && (t1 = request_time("/api/v1/persistentvolumes", "node%3Dnode-r&watch=true", 1)) < 0; i++)
		usleep(100000);
	assert_int_equal(count_requests("/api/v1/persistentvolumes", "watch=true", 429), 1);
	t0 = request_time("/api/v1/persistentvolumes", "node%3Dnode-r&watch=true", 0);
	print_message("# Retry-After 3600 bounded to 1 s: the watch came again %.2f s later\n", t1 - t0);
	assert_true(t1 - t0 >= 1.0);
	kube_watch_stop(kw);
	kw = NULL;

	/* The request client keeps the last answer's Retry-After. */
	struct werr e;
	werr_clear(&e);
	json_decref(ctl("POST", "fault", "{\"apf\": true, \"retry_after\": 5, \"count\": 1, \"path\": \"/api/v1/persistentvolumes\", \"method\": \"POST\"}"));
	json_t *d = spec_doc("node-r", "r1");
	struct kube_pv pv;
	bool existed;
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "429"));
	assert_int_equal(kube_client_retry_after(kc), 5);
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
	assert_int_equal(kube_client_retry_after(kc), 0);
	json_decref(d);
}

static void write_file(const char *path, const char *text)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(rename(tmp, path), 0);
}

static void test_token_rotation(void **state)
{
	(void)state;
	if (!opts.token_file)
		skip();
	struct werr e;
	werr_clear(&e);
	struct kube_pv *items;
	size_t n;
	char rv[64];
	/* The token rotates (the double rereads the same file): the client
	 * notices the file changed and sends the new one. */
	write_file(opts.token_file, "rotated-token-2\n");
	assert_int_equal(kube_pv_list(kc, NULL, &items, &n, rv, &e), 0);
	free(items);
	/* A client with a wrong token gets 401, named. */
	char other[4200];
	snprintf(other, sizeof(other), "%s.wrong", opts.token_file);
	write_file(other, "wrong");
	struct kube_client_opts o2 = opts;
	o2.token_file = other;
	struct kube_client *k2;
	assert_int_equal(kube_client_new(&k2, &o2, &e), 0);
	werr_clear(&e);
	assert_int_equal(kube_pv_list(k2, NULL, &items, &n, rv, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "401"));
	kube_client_free(k2);
	unlink(other);
}

static unsigned long ctxt_switches(void)
{
	unsigned long sum = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[300], line[256];
		snprintf(p, sizeof(p), "/proc/self/task/%s/status", de->d_name);
		FILE *f = fopen(p, "re");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long v;
			if (sscanf(line, "voluntary_ctxt_switches: %lu", &v) == 1)
				sum += v;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return sum;
}

static void test_idle_and_bookmarks(void **state)
{
	(void)state;
	struct werr e;
	werr_clear(&e);
	start_watch("node-i");
	kube_watch_item_free(wait_item(KUBE_W_SYNC));
	wait_watch("node-i");
	json_decref(ctl("POST", "log/clear", NULL));
	/* Idle: no request, and the watch thread does not wake up. */
	unsigned long c0 = ctxt_switches();
	sleep(3);
	unsigned long c1 = ctxt_switches();
	assert_int_equal(count_requests("/", NULL, 0), 0);
	if (c1 - c0 > 2) /* this thread's own sleep */
		fail_msg("%lu voluntary context switches in 3 s of idle", c1 - c0);

	/* Others' changes move the global resourceVersion; a bookmark tells the
	 * client, and a watch that ends resumes from there (no relist). */
	json_t *d = spec_doc("node-elsewhere", "b1");
	struct kube_pv pv;
	bool existed;
	assert_int_equal(kube_pv_create(kc, d, &pv, &existed, &e), 0);
	json_decref(d);
	json_t *stt = ctl("GET", "state", NULL);
	char want[64];
	snprintf(want, sizeof(want), "resourceVersion=%s",
		 json_string_value(json_object_get(stt, "resourceVersion")));
	json_decref(stt);
	json_decref(ctl("POST", "bookmark", NULL));
	/* Sent before the stream ends (the same connection, in order). */
	for (int i = 0; i < 300; i++) {
		json_t *w = watch_of("node-i");
		json_t *b = json_object_get(w, "bookmarks");
		bool sent = json_is_integer(b) && json_integer_value(b) > 0;
		json_decref(w);
		if (sent)
			break;
		usleep(100000);
	}
	json_decref(ctl("POST", "watches/drop", "{\"graceful\": true}"));
	int found = 0;
	for (int i = 0; i < 300 && !found; i++) {
		found = count_requests("/api/v1/persistentvolumes", want, 0);
		usleep(100000);
	}
	if (!found)
		fail_msg("no watch resumed with %s", want);
	/* No list since the log was cleared: resumed, not relisted. */
	assert_int_equal(count_requests("/api/v1/persistentvolumes", "labelSelector", 0),
			 count_requests("/api/v1/persistentvolumes", "watch=true", 0));
	kube_watch_stop(kw);
	kw = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pv_crud),
		cmocka_unit_test(test_409_not_ours),
		cmocka_unit_test(test_list_and_event),
		cmocka_unit_test(test_watch_events_and_relist),
		cmocka_unit_test(test_watch_backoff_on_429),
		cmocka_unit_test(test_watch_paging),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_token_rotation),
		cmocka_unit_test(test_idle_and_bookmarks),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
