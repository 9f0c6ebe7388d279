/*
 * libFuzzer target for everything in kube/ that reads API-server answers:
 * the watch stream (the line splitter fed in pieces, then each line as a
 * watch event), a PV list, a Status, a single PV object.
 *
 * The first byte picks the reader (low 2 bits) and the chunk size of the
 * stream (the rest); the remainder is the body. Findings, besides crashes and
 * sanitizer reports: a parsed PV whose name is not a DNS-1123 subdomain, a
 * volume taken from a path that is not /dev/mapper/<one component>, any
 * string field with a control character or without its terminator, a Status
 * code outside 0..999, a list over KUBE_LIST_MAX.
 */
#include "kube/kube_int.h"

#include <stdlib.h>

static void check_str(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	if (n == cap)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static void check_pv(const struct kube_pv *pv)
{
	check_str(pv->name, sizeof(pv->name));
	if (!kube_dns1123_subdomain(pv->name))
		abort();
	check_str(pv->uid, sizeof(pv->uid));
	check_str(pv->resource_version, sizeof(pv->resource_version));
	check_str(pv->node_label, sizeof(pv->node_label));
	check_str(pv->local_path, sizeof(pv->local_path));
	check_str(pv->volume, sizeof(pv->volume));
	check_str(pv->luks_uuid, sizeof(pv->luks_uuid));
	check_str(pv->claim, sizeof(pv->claim));
	if (pv->volume[0] && (strchr(pv->volume, '/') || strcmp(pv->local_path + 12, pv->volume) ||
			      strncmp(pv->local_path, "/dev/mapper/", 12)))
		abort();
	if (pv->phase > KUBE_PHASE_OTHER)
		abort();
}

static void check_status(const struct kube_status *st)
{
	if (st->code < 0 || st->code > 999)
		abort();
	check_str(st->reason, sizeof(st->reason));
	check_str(st->message, sizeof(st->message));
}

static int on_line(void *arg, const char *line, size_t len)
{
	(void)arg;
	if (line[len] != '\0' || memchr(line, '\n', len))
		abort();
	struct kube_watch_event ev;
	struct werr e;
	werr_clear(&e);
	if (kube_watch_event_parse(line, len, &ev, &e) < 0) {
		if (!e.msg[0])
			abort();
		return 0;
	}
	check_str(ev.rv, sizeof(ev.rv));
	if (ev.type == KUBE_EV_ERROR)
		check_status(&ev.status);
	else if (ev.type != KUBE_EV_BOOKMARK)
		check_pv(&ev.pv);
	else if (!ev.rv[0])
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 3, chunk = (data[0] >> 2) + 1;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	struct werr e;
	werr_clear(&e);
	switch (mode) {
	case 0: { /* the watch stream, fed in chunks */
		struct kube_lines lb = {.max = 4096};
		for (size_t off = 0; off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;
			if (kube_lines_feed(&lb, body + off, n, on_line, NULL) < 0) {
				kube_lines_reset(&lb);
			}
		}
		kube_lines_free(&lb);
		break;
	}
	case 1: { /* a list */
		struct kube_pv *it = NULL;
		size_t n = 0, skipped = 0;
		char rv[64];
		if (kube_pv_list_parse(body, len, &it, &n, rv, &skipped, &e) == 0) {
			if (n > KUBE_LIST_MAX || !rv[0])
				abort();
			check_str(rv, sizeof(rv));
			for (size_t i = 0; i < n; i++)
				check_pv(&it[i]);
		} else if (it || !e.msg[0]) {
			abort();
		}
		free(it);
		break;
	}
	case 2: { /* a Status */
		struct kube_status st;
		if (kube_status_parse(body, len, &st) == 0)
			check_status(&st);
		break;
	}
	default: { /* one object (a GET or a create's answer) */
		json_error_t je;
		json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
		struct kube_pv pv;
		if (j && kube_pv_parse(j, &pv, &e) == 0)
			check_pv(&pv);
		json_decref(j);
		break;
	}
	}
	return 0;
}
