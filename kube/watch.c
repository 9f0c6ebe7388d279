/*
 * The watch of the agent's PVs, on its own thread (kube/kube.h).
 *
 * Why a thread with a curl multi handle, and not the agent's epoll: the
 * transfer code (TLS, chunked decoding, reconnects) stays libcurl's, the
 * agent's loop only sees one eventfd, and the thread sleeps in
 * curl_multi_poll with no timeout while the stream is idle (no curl timer
 * is set: no overall timeout, TCP keep-alive is the kernel's). The agent
 * stops it with curl_multi_wakeup, even in the middle of a transfer or a
 * back-off wait. Zero wake-ups at idle either way.
 *
 * Cycle: list (→ KUBE_W_SYNC with every PV) → watch from the list's
 * resourceVersion with allowWatchBookmarks and timeoutSeconds → on a normal
 * end, watch again from the last resourceVersion seen (events or
 * bookmarks); on 410 (HTTP or an ERROR event) list again; on 429, 5xx, a
 * broken connection or a bad line, back off (exponential, jittered) and
 * watch again from the last resourceVersion.
 *
 * The list is paged (limit=, then continue= until a page has no continue
 * token; the API reference's "Retrieving large results sets in chunks"):
 * every page is the same snapshot, so the first page's resourceVersion is
 * the list's. A continue token that expired (410) starts the list again
 * from its first page, once; a second 410 in the same list backs off.
 *
 * Retry-After (the API server sends it with 429 from its priority-and-
 * fairness / max-in-flight filter, and with any error whose Status carries
 * details.retryAfterSeconds): the back-off after that answer lasts at
 * least that long, bounded by retry_after_max_ms.
 */
#include "kube/kube_int.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/random.h>

enum { END_OK = 0, END_RELIST = 1, END_BACKOFF = 2, END_STOP = 3 };

struct kube_watch {
	struct kube_client *kc;        /* the thread's own (token state, URL) */
	char *selector;                /* URL-escaped */
	long timeout_s, bmin, bmax;
	long page_limit, ra_max;
	CURLM *multi;
	CURL *easy;
	int efd;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	struct kube_watch_item *head, **tail;
	bool stop, relist;             /* under mu */

	/* thread-only */
	uint32_t rng;
	unsigned fails;
	uint64_t retry_after_ms;       /* the last error answer's Retry-After, 0 none */
	char rv[64];
	struct kube_lines lines;
	struct kube_body errbody;      /* a non-200 answer's body (Status) */
	int end;                       /* END_* decided by the stream */
	char why[WERR_MSG_MAX];
	bool state_ok_sent;
};

static void push(struct kube_watch *kw, struct kube_watch_item *it)
{
	pthread_mutex_lock(&kw->mu);
	*kw->tail = it;
	kw->tail = &it->next;
	pthread_mutex_unlock(&kw->mu);
	uint64_t one = 1;
	if (write(kw->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the loop will read anyway */
	}
}

static bool stopping(struct kube_watch *kw, bool *relist)
{
	pthread_mutex_lock(&kw->mu);
	bool s = kw->stop;
	if (relist) {
		*relist = kw->relist;
		kw->relist = false;
	}
	pthread_mutex_unlock(&kw->mu);
	return s;
}

static void push_state(struct kube_watch *kw, bool ok, const char *msg)
{
	if (ok && kw->state_ok_sent)
		return;
	kw->state_ok_sent = ok;
	struct kube_watch_item *it = calloc(1, sizeof(*it));
	if (!it)
		return;
	it->kind = KUBE_W_STATE;
	it->ok = ok;
	snprintf(it->msg, sizeof(it->msg), "%s", msg ? msg : "");
	push(kw, it);
}

/* Runs one transfer on the multi handle until it ends or stop. */
static int perform(struct kube_watch *kw, CURLcode *cc)
{
	if (curl_multi_add_handle(kw->multi, kw->easy) != CURLM_OK)
		return -ENOMEM;
	int r = 0;
	*cc = CURLE_OK;
	for (;;) {
		int running = 0;
		curl_multi_perform(kw->multi, &running);
		int left;
		CURLMsg *m;
		while ((m = curl_multi_info_read(kw->multi, &left)))
			if (m->msg == CURLMSG_DONE)
				*cc = m->data.result;
		if (!running)
			break;
		if (stopping(kw, NULL)) {
			r = -EINTR;
			break;
		}
		/* No timeout of ours: curl's own timers (connect) cap it. */
		curl_multi_poll(kw->multi, NULL, 0, 24 * 3600 * 1000, NULL);
		if (stopping(kw, NULL)) {
			r = -EINTR;
			break;
		}
	}
	curl_multi_remove_handle(kw->multi, kw->easy);
	return r;
}

/* Sleeps the back-off (woken by stop or a relist request). */
static void backoff(struct kube_watch *kw)
{
	unsigned n = kw->fails < 16 ? kw->fails : 16;
	uint64_t d = (uint64_t)kw->bmin << n;
	if (d > (uint64_t)kw->bmax)
		d = (uint64_t)kw->bmax;
	kw->rng ^= kw->rng << 13;
	kw->rng ^= kw->rng >> 17;
	kw->rng ^= kw->rng << 5;
	d = d / 2 + kw->rng % (d / 2 + 1); /* jitter: [d/2, d] */
	if (kw->retry_after_ms) {
		/* The server said when: not before that, within our bound. */
		uint64_t ra = kw->retry_after_ms < (uint64_t)kw->ra_max ? kw->retry_after_ms
									 : (uint64_t)kw->ra_max;
		if (ra > d)
			d = ra;
		kw->retry_after_ms = 0;
	}
	kw->fails++;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		uint64_t el = (uint64_t)(t.tv_sec - t0.tv_sec) * 1000 +
			      (uint64_t)((t.tv_nsec - t0.tv_nsec) / 1000000);
		pthread_mutex_lock(&kw->mu);
		bool wake = kw->stop || kw->relist;
		pthread_mutex_unlock(&kw->mu);
		if (wake || el >= d)
			return;
		curl_multi_poll(kw->multi, NULL, 0, (int)(d - el), NULL);
	}
}

/* ---- list ---- */

/* Retry-After of the answer just received (seconds, or an HTTP date: curl
 * turns both into seconds from now). */
static void note_retry_after(struct kube_watch *kw)
{
	curl_off_t ra = 0;
	if (curl_easy_getinfo(kw->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
		kw->retry_after_ms = 0;
	else
		kw->retry_after_ms = ra > 86400 ? 86400000u : (uint64_t)ra * 1000u;
}

enum { PAGE_EXPIRED = 4 };

/* One page: END_OK (items, rv, next filled), END_BACKOFF, END_STOP, or
 * PAGE_EXPIRED (410 on a continue token). */
static int list_page(struct kube_watch *kw, const char *cont, struct kube_pv **items, size_t *n,
		     char rv[64], char next[KUBE_CONTINUE_MAX])
{
	char *ce = cont[0] ? curl_easy_escape(kw->easy, cont, 0) : NULL;
	size_t plen = strlen(kw->selector) + (ce ? strlen(ce) : 0) + 128;
	_cleanup_free_ char *path = malloc(plen);
	if (!path || (cont[0] && !ce)) {
		curl_free(ce);
		return END_BACKOFF;
	}
	snprintf(path, plen, "/api/v1/persistentvolumes?labelSelector=%s&limit=%ld%s%s", kw->selector,
		 kw->page_limit, ce ? "&continue=" : "", ce ? ce : "");
	curl_free(ce);
	struct werr err;
	werr_clear(&err);
	struct curl_slist *hdrs = NULL;
	int r = kube_easy_setup(kw->kc, kw->easy, "GET", path, NULL, NULL, false, &hdrs, &err);
	if (r < 0) {
		push_state(kw, false, werr_str(&err, r));
		return END_BACKOFF;
	}
	struct kube_body b = {.max = KUBE_RESPONSE_MAX};
	curl_easy_setopt(kw->easy, CURLOPT_WRITEFUNCTION, kube_body_write);
	curl_easy_setopt(kw->easy, CURLOPT_WRITEDATA, &b);
	CURLcode cc;
	r = perform(kw, &cc);
	curl_slist_free_all(hdrs);
	if (r == -EINTR) {
		kube_body_free(&b);
		return END_STOP;
	}
	long st = 0;
	curl_easy_getinfo(kw->easy, CURLINFO_RESPONSE_CODE, &st);
	if (cc == CURLE_OK && st == 410 && cont[0]) {
		kube_body_free(&b);
		wlog(kw->kc->log, WLOG_INFO, "kube: list: the continue token expired (410): listing again from the first page");
		return PAGE_EXPIRED;
	}
	if (cc != CURLE_OK || st != 200) {
		json_error_t je;
		json_t *j = b.len ? json_loadb(b.buf, b.len, JSON_REJECT_DUPLICATES, &je) : NULL;
		if (cc != CURLE_OK) {
			werr_set(&err, -EHOSTUNREACH, "kube: list: %s", b.too_big ? "the list is too large" : curl_easy_strerror(cc));
		} else {
			note_retry_after(kw);
			kube_http_error(&err, -EPROTO, "GET", "/api/v1/persistentvolumes (list)", st, j);
		}
		json_decref(j);
		push_state(kw, false, err.msg);
		if (kw->retry_after_ms)
			wlog(kw->kc->log, WLOG_WARN, "%s (Retry-After: %llu s)", err.msg,
			     (unsigned long long)(kw->retry_after_ms / 1000));
		else
			wlog(kw->kc->log, WLOG_WARN, "%s", err.msg);
		kube_body_free(&b);
		return END_BACKOFF;
	}
	size_t skipped = 0;
	r = kube_pv_list_page_parse(b.buf, b.len, items, n, rv, next, &skipped, &err);
	kube_body_free(&b);
	if (r < 0) {
		push_state(kw, false, werr_str(&err, r));
		return END_BACKOFF;
	}
	if (skipped)
		wlog(kw->kc->log, WLOG_WARN, "kube: list: %zu item(s) that are not PVs skipped", skipped);
	return END_OK;
}

static int do_list(struct kube_watch *kw)
{
	struct kube_pv *all = NULL;
	size_t nall = 0;
	unsigned pages = 0, restarts = 0;
	char rv[64] = "", list_rv[64] = "";
	/* Two tokens (the one asked with, the next): 8 KiB, off the stack. */
	char *cont = calloc(2, KUBE_CONTINUE_MAX);
	if (!cont)
		return END_BACKOFF;
	char *next = cont + KUBE_CONTINUE_MAX;
	int end;
	for (;;) {
		struct kube_pv *items = NULL;
		size_t n = 0;
		end = list_page(kw, cont, &items, &n, rv, next);
		if (end == PAGE_EXPIRED && !restarts++) {
			free(all);
			all = NULL;
			nall = pages = 0;
			cont[0] = '\0';
			continue;
		}
		if (end != END_OK) {
			if (end == PAGE_EXPIRED) {
				push_state(kw, false, "kube: list: the continue token expired twice in one list");
				end = END_BACKOFF;
			}
			break;
		}
		if (!pages++)
			snprintf(list_rv, sizeof(list_rv), "%s", rv);
		if (nall + n > KUBE_LIST_MAX) {
			free(items);
			push_state(kw, false, "kube: list: more than 100000 PVs match the selector");
			end = END_BACKOFF;
			break;
		}
		struct kube_pv *na = realloc(all, (nall + n ? nall + n : 1) * sizeof(*na));
		if (!na) {
			free(items);
			end = END_BACKOFF;
			break;
		}
		all = na;
		if (n)
			memcpy(all + nall, items, n * sizeof(*items));
		nall += n;
		free(items);
		if (!next[0])
			break;
		if (stopping(kw, NULL)) {
			end = END_STOP;
			break;
		}
		memcpy(cont, next, KUBE_CONTINUE_MAX);
	}
	free(cont);
	struct kube_watch_item *it = end == END_OK ? calloc(1, sizeof(*it)) : NULL;
	if (!it) {
		free(all);
		return end == END_OK ? END_BACKOFF : end;
	}
	snprintf(kw->rv, sizeof(kw->rv), "%s", list_rv);
	it->kind = KUBE_W_SYNC;
	it->items = all;
	it->n = nall;
	push_state(kw, true, NULL);
	push(kw, it); /* the loop owns it from here */
	wlog(kw->kc->log, WLOG_DEBUG, "kube: listed %zu PV(s) in %u page(s) at resourceVersion %s",
	     nall, pages, list_rv);
	return END_OK;
}

/* ---- watch ---- */

static int on_line(void *arg, const char *line, size_t len)
{
	struct kube_watch *kw = arg;
	struct kube_watch_event ev;
	struct werr err;
	werr_clear(&err);
	if (kube_watch_event_parse(line, len, &ev, &err) < 0) {
		snprintf(kw->why, sizeof(kw->why), "%s", err.msg);
		kw->end = END_BACKOFF;
		return -EBADMSG;
	}
	switch (ev.type) {
	case KUBE_EV_ERROR:
		if (ev.status.code == 410) {
			snprintf(kw->why, sizeof(kw->why), "watch: %s (410): listing again",
				 ev.status.reason[0] ? ev.status.reason : "Expired");
			kw->end = END_RELIST;
		} else {
			snprintf(kw->why, sizeof(kw->why), "watch: ERROR %ld %s: %s", ev.status.code,
				 ev.status.reason, ev.status.message);
			kw->end = END_BACKOFF;
		}
		return -ECONNABORTED;
	case KUBE_EV_BOOKMARK:
		snprintf(kw->rv, sizeof(kw->rv), "%s", ev.rv);
		return 0;
	default:
		break;
	}
	snprintf(kw->rv, sizeof(kw->rv), "%s", ev.rv);
	kw->fails = 0;
	struct kube_watch_item *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->kind = KUBE_W_EVENT;
	it->ev = ev.type;
	it->pv = ev.pv;
	push(kw, it);
	return 0;
}

static size_t watch_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct kube_watch *kw = arg;
	size_t n = size * nmemb;
	long st = 0;
	curl_easy_getinfo(kw->easy, CURLINFO_RESPONSE_CODE, &st);
	if (st != 200) {
		kw->errbody.max = 1u << 20;
		return kube_body_write(p, size, nmemb, &kw->errbody);
	}
	int r = kube_lines_feed(&kw->lines, p, n, on_line, kw);
	if (r == -EMSGSIZE) {
		/* Watching again from here would meet it again: list. */
		snprintf(kw->why, sizeof(kw->why), "watch: an event longer than %u bytes; listing again",
			 KUBE_LINE_MAX);
		kw->end = END_RELIST;
	}
	return r < 0 ? 0 : n;
}

static int do_watch(struct kube_watch *kw)
{
	char path[1400];
	char *rv = curl_easy_escape(kw->easy, kw->rv, 0);
	if (!rv)
		return END_BACKOFF;
	snprintf(path, sizeof(path),
		 "/api/v1/persistentvolumes?labelSelector=%s&watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%ld",
		 kw->selector, rv, kw->timeout_s);
	curl_free(rv);
	struct werr err;
	werr_clear(&err);
	struct curl_slist *hdrs = NULL;
	int r = kube_easy_setup(kw->kc, kw->easy, "GET", path, NULL, NULL, true, &hdrs, &err);
	if (r < 0) {
		push_state(kw, false, werr_str(&err, r));
		return END_BACKOFF;
	}
	kube_lines_reset(&kw->lines);
	kube_body_free(&kw->errbody);
	kw->end = END_OK;
	kw->why[0] = '\0';
	curl_easy_setopt(kw->easy, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(kw->easy, CURLOPT_WRITEDATA, kw);
	CURLcode cc;
	r = perform(kw, &cc);
	curl_slist_free_all(hdrs);
	if (r == -EINTR)
		return END_STOP;
	long st = 0;
	curl_easy_getinfo(kw->easy, CURLINFO_RESPONSE_CODE, &st);
	if (kw->end != END_OK) {
		/* The stream said so (ERROR event, a bad line). */
		wlog(kw->kc->log, kw->end == END_RELIST ? WLOG_INFO : WLOG_WARN, "kube: %s", kw->why);
		if (kw->end == END_BACKOFF)
			push_state(kw, false, kw->why);
		return kw->end;
	}
	if (cc == CURLE_OK && st == 200)
		return END_OK; /* timeoutSeconds: watch again from kw->rv */
	if (cc == CURLE_OK && st == 410) {
		wlog(kw->kc->log, WLOG_INFO, "kube: watch: 410 Gone: listing again");
		return END_RELIST;
	}
	if (cc != CURLE_OK)
		werr_set(&err, -EHOSTUNREACH, "kube: watch: %s", curl_easy_strerror(cc));
	else {
		note_retry_after(kw);
		json_error_t je;
		json_t *j = kw->errbody.len ? json_loadb(kw->errbody.buf, kw->errbody.len,
							 JSON_REJECT_DUPLICATES, &je) : NULL;
		kube_http_error(&err, -EPROTO, "GET", "/api/v1/persistentvolumes?watch=true", st, j);
		json_decref(j);
	}
	wlog(kw->kc->log, WLOG_WARN, "%s", err.msg);
	push_state(kw, false, err.msg);
	return END_BACKOFF;
}

static void *watch_main(void *arg)
{
	struct kube_watch *kw = arg;
	bool need_list = true;
	pthread_setname_np(pthread_self(), "wrapd-kwatch");
	for (;;) {
		bool relist = false;
		if (stopping(kw, &relist))
			break;
		if (relist)
			need_list = true;
		int end;
		if (need_list) {
			end = do_list(kw);
			if (end == END_OK) {
				need_list = false;
				kw->fails = 0;
				continue;
			}
		} else {
			end = do_watch(kw);
		}
		if (end == END_STOP)
			break;
		if (end == END_RELIST)
			need_list = true;
		else if (end == END_BACKOFF)
			backoff(kw);
	}
	return NULL;
}

int kube_watch_start(struct kube_watch **out, const struct kube_watch_opts *o, struct werr *err)
{
	*out = NULL;
	struct kube_watch *kw = calloc(1, sizeof(*kw));
	if (!kw)
		return -ENOMEM;
	kw->efd = -1;
	kw->tail = &kw->head;
	pthread_mutex_init(&kw->mu, NULL);
	kw->timeout_s = o->timeout_seconds > 0 ? o->timeout_seconds : 600;
	kw->bmin = o->backoff_min_ms > 0 ? o->backoff_min_ms : 500;
	kw->bmax = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	if (kw->bmax < kw->bmin)
		kw->bmax = kw->bmin;
	kw->page_limit = o->page_limit > 0 ? o->page_limit : KUBE_PAGE_LIMIT;
	kw->ra_max = o->retry_after_max_ms > 0 ? o->retry_after_max_ms : 30000;
	if (getrandom(&kw->rng, sizeof(kw->rng), 0) != sizeof(kw->rng) || !kw->rng)
		kw->rng = (uint32_t)getpid() | 1;
	int r = kube_client_new(&kw->kc, &o->client, err);
	if (r < 0)
		goto fail;
	kw->multi = curl_multi_init();
	kw->easy = curl_easy_init();
	kw->selector = curl_easy_escape(kw->easy, o->selector ? o->selector : KUBE_SELECTOR, 0);
	kw->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!kw->multi || !kw->easy || !kw->selector || kw->efd < 0) {
		r = werr_set(err, -ENOMEM, "kube: cannot set up the watch");
		goto fail;
	}
	if ((r = -pthread_create(&kw->th, NULL, watch_main, kw)) < 0) {
		werr_set(err, r, "kube: cannot start the watch thread");
		goto fail;
	}
	kw->started = true;
	*out = kw;
	return 0;
fail:
	kube_watch_stop(kw);
	return r;
}

int kube_watch_fd(const struct kube_watch *kw)
{
	return kw->efd;
}

struct kube_watch_item *kube_watch_take(struct kube_watch *kw)
{
	uint64_t x;
	if (read(kw->efd, &x, sizeof(x)) < 0) {
		/* EAGAIN: nothing counted */
	}
	pthread_mutex_lock(&kw->mu);
	struct kube_watch_item *h = kw->head;
	kw->head = NULL;
	kw->tail = &kw->head;
	pthread_mutex_unlock(&kw->mu);
	return h;
}

void kube_watch_relist(struct kube_watch *kw)
{
	pthread_mutex_lock(&kw->mu);
	kw->relist = true;
	pthread_mutex_unlock(&kw->mu);
	curl_multi_wakeup(kw->multi);
}

void kube_watch_item_free(struct kube_watch_item *it)
{
	while (it) {
		struct kube_watch_item *n = it->next;
		free(it->items);
		free(it);
		it = n;
	}
}

void kube_watch_stop(struct kube_watch *kw)
{
	if (!kw)
		return;
	if (kw->started) {
		pthread_mutex_lock(&kw->mu);
		kw->stop = true;
		pthread_mutex_unlock(&kw->mu);
		curl_multi_wakeup(kw->multi);
		pthread_join(kw->th, NULL);
	}
	kube_watch_item_free(kw->head);
	if (kw->selector)
		curl_free(kw->selector);
	if (kw->easy)
		curl_easy_cleanup(kw->easy);
	if (kw->multi)
		curl_multi_cleanup(kw->multi);
	kube_client_free(kw->kc);
	kube_lines_free(&kw->lines);
	kube_body_free(&kw->errbody);
	if (kw->efd >= 0)
		close(kw->efd);
	pthread_mutex_destroy(&kw->mu);
	free(kw);
}
