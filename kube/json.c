/*
 * The JSON side of the Kubernetes client, without I/O (kube/kube.h): the
 * documents wrapd writes (PersistentVolume, Event), the PV name rule, and
 * reading what the API server sends (PVs, lists, Status, watch events).
 * tests/fuzz/fuzz_kube_json.c drives every reader.
 */
#include "kube/kube_int.h"

#include <ctype.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------------ names */

bool kube_dns1123_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
			return false;
	}
	return true;
}

bool kube_dns1123_subdomain(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	char part[64];
	const char *p = s;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63)
			return false;
		memcpy(part, p, l);
		part[l] = '\0';
		if (!kube_dns1123_label(part))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

static void sha256_hex10(const char *a, const char *b, char out[11])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		  EVP_DigestUpdate(c, a, strlen(a)) &&
		  (!b || (EVP_DigestUpdate(c, "/", 1) && EVP_DigestUpdate(c, b, strlen(b)))) &&
		  EVP_DigestFinal_ex(c, md, &len);
	EVP_MD_CTX_free(c);
	if (!ok || len < 5)
		memset(md, 0, 5);
	for (int i = 0; i < 5; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void kube_pv_name(const char *node, const char *volume, char out[254])
{
	int w = snprintf(out, 254, "wrapd-%s-%s", node, volume);
	if (w > 0 && w < 254 && kube_dns1123_subdomain(out))
		return;
	/* Fallback: a single DNS label, prefix made of the safe characters of
	 * "<node>-<volume>" (lowercased, anything else becomes '-'), then the
	 * hash of both, so that two nodes never share a name. */
	char pre[41];
	size_t k = 0;
	bool dash = true; /* no leading dash, no runs */
	for (int part = 0; part < 2 && k < 40; part++) {
		const char *s = part ? volume : node;
		if (part && !dash)
			pre[k++] = '-', dash = true;
		for (; *s && k < 40; s++) {
			char c = (char)tolower((unsigned char)*s);
			if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
				pre[k++] = c;
				dash = false;
			} else if (!dash) {
				pre[k++] = '-';
				dash = true;
			}
		}
	}
	while (k > 0 && pre[k - 1] == '-')
		k--;
	pre[k] = '\0';
	char h[11];
	sha256_hex10(node, volume, h);
	snprintf(out, 254, "wrapd-%s%s%s", pre, k ? "-" : "", h);
}

static bool label_value_ok(const char *s)
{
	size_t n = strlen(s);
	if (n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alnum = isalnum(c) && c < 0x80;
		if (!alnum && ((c != '-' && c != '_' && c != '.') || i == 0 || i + 1 == n))
			return false;
	}
	return true;
}

void kube_label_value(const char *s, char out[64])
{
	if (label_value_ok(s)) {
		snprintf(out, 64, "%s", s);
		return;
	}
	size_t k = 0;
	for (; s[k] && k < 40; k++) {
		unsigned char c = (unsigned char)s[k];
		out[k] = (isalnum(c) && c < 0x80) || c == '-' || c == '.' || c == '_' ? (char)c : '-';
	}
	while (k > 0 && !isalnum((unsigned char)out[k - 1]))
		k--;
	size_t start = 0;
	while (start < k && !isalnum((unsigned char)out[start]))
		start++;
	memmove(out, out + start, k - start);
	k -= start;
	char h[11];
	sha256_hex10(s, NULL, h);
	snprintf(out + k, 64 - k, "%s%s", k ? "-" : "", h);
}

/* ------------------------------------------------------------ documents */

json_t *kube_pv_build(const struct kube_pv_spec *s)
{
	char name[254], node_label[64], cap[32];
	kube_pv_name(s->node, s->volume, name);
	kube_label_value(s->node, node_label);
	snprintf(cap, sizeof(cap), "%" PRIu64, s->capacity_bytes);
	char path[256];
	snprintf(path, sizeof(path), "/dev/mapper/%s", s->volume);
	json_t *local = s->block ? json_pack("{s:s}", "path", path)
				 : json_pack("{s:s,s:s}", "path", path, "fsType",
					     s->fs_type && *s->fs_type ? s->fs_type : "ext4");
	if (!local)
		return NULL;
	return json_pack(
		"{s:s,s:s,"
		" s:{s:s,s:{s:s,s:s},s:{s:s,s:s}},"
		" s:{s:{s:s},s:s,s:[s],s:s,s:s,s:o,"
		"    s:{s:{s:[{s:[{s:s,s:s,s:[s]}]}]}}}}",
		"apiVersion", "v1", "kind", "PersistentVolume",
		"metadata", "name", name,
		"labels", KUBE_MANAGED_BY_LABEL, KUBE_MANAGED_BY_VALUE, KUBE_NODE_LABEL, node_label,
		"annotations", KUBE_PROVISIONED_BY_ANN, KUBE_PROVISIONED_BY_VALUE,
		KUBE_LUKS_UUID_ANN, s->luks_uuid ? s->luks_uuid : "",
		"spec", "capacity", "storage", cap,
		"volumeMode", s->block ? "Block" : "Filesystem",
		"accessModes", "ReadWriteOnce",
		"persistentVolumeReclaimPolicy", s->retain ? "Retain" : "Delete",
		"storageClassName", s->storage_class,
		"local", local,
		"nodeAffinity", "required", "nodeSelectorTerms", "matchExpressions",
		"key", "kubernetes.io/hostname", "operator", "In", "values", s->node);
}

json_t *kube_event_build(const struct kube_event_spec *s)
{
	char name[254 + 32], ts[32];
	char base[200];
	snprintf(base, sizeof(base), "%.180s", s->pv_name);
	snprintf(name, sizeof(name), "%s.%" PRIx64, base, s->unique);
	struct tm tm;
	gmtime_r(&s->now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", s->message);
	json_t *inv = json_pack("{s:s,s:s,s:s}", "apiVersion", "v1", "kind", "PersistentVolume",
				"name", s->pv_name);
	if (!inv)
		return NULL;
	if (s->pv_uid && *s->pv_uid && json_object_set_new(inv, "uid", json_string(s->pv_uid)) < 0) {
		json_decref(inv);
		return NULL;
	}
	return json_pack("{s:s,s:s,s:{s:s,s:s},s:o,s:s,s:s,s:s,s:{s:s,s:s},s:s,s:s,s:i,s:s,s:s}",
			 "apiVersion", "v1", "kind", "Event",
			 "metadata", "name", name, "namespace", s->ns,
			 "involvedObject", inv,
			 "type", s->warning ? "Warning" : "Normal",
			 "reason", s->reason, "message", msg,
			 "source", "component", "wrapd", "host", s->node,
			 "firstTimestamp", ts, "lastTimestamp", ts, "count", 1,
			 "reportingComponent", "wrapd.io/wrapd", "reportingInstance", s->node);
}

/* ------------------------------------------------------------- reading */

/* Copies a JSON string, bounded; control characters become '?'. false when
 * v is not a string or (strict) does not fit. */
static bool get_str(json_t *v, char *out, size_t cap, bool strict)
{
	out[0] = '\0';
	if (!json_is_string(v))
		return false;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (strict && (n >= cap || memchr(s, '\0', n)))
		return false;
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		out[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[k] = '\0';
	return true;
}

static const char *str_at(json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *kube_phase_name(enum kube_phase p)
{
	switch (p) {
	case KUBE_PHASE_PENDING: return "Pending";
	case KUBE_PHASE_AVAILABLE: return "Available";
	case KUBE_PHASE_BOUND: return "Bound";
	case KUBE_PHASE_RELEASED: return "Released";
	case KUBE_PHASE_FAILED: return "Failed";
	case KUBE_PHASE_NONE: return "";
	default: return "Other";
	}
}

static enum kube_phase phase_of(const char *s)
{
	if (!s)
		return KUBE_PHASE_NONE;
	for (int p = KUBE_PHASE_PENDING; p <= KUBE_PHASE_FAILED; p++)
		if (!strcmp(s, kube_phase_name((enum kube_phase)p)))
			return (enum kube_phase)p;
	return KUBE_PHASE_OTHER;
}

/* "1073741824", "1Gi", "512M": bytes, 0 when unreadable or over 2^64. */
static uint64_t quantity_bytes(const char *s)
{
	if (!s || !isdigit((unsigned char)*s))
		return 0;
	uint64_t v = 0;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	static const struct { const char *sfx; uint64_t base; unsigned pow; } units[] = {
		{"", 1, 0}, {"k", 1000, 1}, {"M", 1000, 2}, {"G", 1000, 3}, {"T", 1000, 4},
		{"P", 1000, 5}, {"E", 1000, 6}, {"Ki", 1024, 1}, {"Mi", 1024, 2}, {"Gi", 1024, 3},
		{"Ti", 1024, 4}, {"Pi", 1024, 5}, {"Ei", 1024, 6},
	};
	for (size_t u = 0; u < ARRAY_SIZE(units); u++) {
		if (strcmp(s, units[u].sfx))
			continue;
		for (unsigned i = 0; i < units[u].pow; i++) {
			if (v > UINT64_MAX / units[u].base)
				return 0;
			v *= units[u].base;
		}
		return v;
	}
	return 0;
}

static void read_claim(json_t *spec, struct kube_pv *pv)
{
	json_t *cr = json_object_get(spec, "claimRef");
	const char *ns = str_at(cr, "namespace"), *name = str_at(cr, "name");
	if (!name)
		return;
	char a[64], b[254];
	get_str(json_object_get(cr, "namespace"), a, sizeof(a), false);
	get_str(json_object_get(cr, "name"), b, sizeof(b), false);
	snprintf(pv->claim, sizeof(pv->claim), "%s/%s", ns ? a : "", b);
}

int kube_pv_parse(json_t *obj, struct kube_pv *pv, struct werr *err)
{
	memset(pv, 0, sizeof(*pv));
	if (!json_is_object(obj))
		return werr_set(err, -EBADMSG, "kube: a PersistentVolume that is not an object");
	const char *kind = str_at(obj, "kind");
	if (kind && strcmp(kind, "PersistentVolume"))
		return werr_set(err, -EBADMSG, "kube: expected a PersistentVolume, got another kind");
	json_t *md = json_object_get(obj, "metadata");
	if (!json_is_object(md) ||
	    !get_str(json_object_get(md, "name"), pv->name, sizeof(pv->name), true) ||
	    !kube_dns1123_subdomain(pv->name))
		return werr_set(err, -EBADMSG, "kube: a PersistentVolume without a valid metadata.name");
	get_str(json_object_get(md, "uid"), pv->uid, sizeof(pv->uid), true);
	get_str(json_object_get(md, "resourceVersion"), pv->resource_version,
		sizeof(pv->resource_version), true);
	pv->deleting = json_object_get(md, "deletionTimestamp") &&
		       !json_is_null(json_object_get(md, "deletionTimestamp"));
	json_t *labels = json_object_get(md, "labels");
	const char *mb = str_at(labels, KUBE_MANAGED_BY_LABEL);
	pv->managed = mb && !strcmp(mb, KUBE_MANAGED_BY_VALUE);
	get_str(json_object_get(labels, KUBE_NODE_LABEL), pv->node_label, sizeof(pv->node_label),
		true);
	json_t *ann = json_object_get(md, "annotations");
	const char *pb = str_at(ann, KUBE_PROVISIONED_BY_ANN);
	pv->provisioned_by_us = pb && !strcmp(pb, KUBE_PROVISIONED_BY_VALUE);
	get_str(json_object_get(ann, KUBE_LUKS_UUID_ANN), pv->luks_uuid, sizeof(pv->luks_uuid),
		true);

	json_t *spec = json_object_get(obj, "spec");
	if (json_is_object(spec)) {
		const char *rp = str_at(spec, "persistentVolumeReclaimPolicy");
		pv->reclaim = !rp ? KUBE_RECLAIM_OTHER
			      : !strcmp(rp, "Delete") ? KUBE_RECLAIM_DELETE
			      : !strcmp(rp, "Retain") ? KUBE_RECLAIM_RETAIN : KUBE_RECLAIM_OTHER;
		const char *vm = str_at(spec, "volumeMode");
		pv->block = vm && !strcmp(vm, "Block");
		json_t *local = json_object_get(spec, "local");
		if (get_str(json_object_get(local, "path"), pv->local_path, sizeof(pv->local_path),
			    true) &&
		    !strncmp(pv->local_path, "/dev/mapper/", 12) &&
		    strlen(pv->local_path + 12) < sizeof(pv->volume) &&
		    !strchr(pv->local_path + 12, '/'))
			snprintf(pv->volume, sizeof(pv->volume), "%s", pv->local_path + 12);
		pv->capacity_bytes = quantity_bytes(str_at(json_object_get(spec, "capacity"), "storage"));
		read_claim(spec, pv);
	}
	json_t *st = json_object_get(obj, "status");
	pv->phase = phase_of(str_at(st, "phase"));
	return 0;
}

int kube_status_from_json(json_t *obj, struct kube_status *st)
{
	memset(st, 0, sizeof(*st));
	if (!json_is_object(obj))
		return -EBADMSG;
	const char *kind = str_at(obj, "kind");
	if (!kind || strcmp(kind, "Status"))
		return -EBADMSG;
	json_t *code = json_object_get(obj, "code");
	if (json_is_integer(code) && json_integer_value(code) >= 0 &&
	    json_integer_value(code) <= 999)
		st->code = (long)json_integer_value(code);
	get_str(json_object_get(obj, "reason"), st->reason, sizeof(st->reason), false);
	get_str(json_object_get(obj, "message"), st->message, sizeof(st->message), false);
	return 0;
}

static json_t *load_bounded(const char *body, size_t len, size_t max)
{
	if (!body || len == 0 || len > max)
		return NULL;
	json_error_t je;
	/* JSON_REJECT_DUPLICATES: one key, one meaning; depth is bounded by
	 * jansson (JSON_PARSER_MAX_DEPTH). */
	return json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
}

int kube_status_parse(const char *body, size_t len, struct kube_status *st)
{
	memset(st, 0, sizeof(*st));
	json_t *j = load_bounded(body, len, KUBE_RESPONSE_MAX);
	int r = kube_status_from_json(j, st);
	json_decref(j);
	return r;
}

int kube_pv_list_from_json(json_t *j, struct kube_pv **items, size_t *n, char rv[64],
			   size_t *skipped, struct werr *err)
{
	*items = NULL;
	*n = 0;
	rv[0] = '\0';
	if (skipped)
		*skipped = 0;
	if (!json_is_object(j))
		return werr_set(err, -EBADMSG, "kube: a PV list that is not a JSON object");
	json_t *arr = json_object_get(j, "items");
	json_t *md = json_object_get(j, "metadata");
	if (!(json_is_array(arr) || json_is_null(arr)) ||
	    !get_str(json_object_get(md, "resourceVersion"), rv, 64, true) || !*rv)
		return werr_set(err, -EBADMSG, "kube: a PV list without items or resourceVersion");
	size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
	if (cnt > KUBE_LIST_MAX)
		return werr_set(err, -E2BIG, "kube: a PV list of %zu items (more than %d)", cnt,
				KUBE_LIST_MAX);
	*items = calloc(cnt ? cnt : 1, sizeof(**items));
	if (!*items)
		return -ENOMEM;
	for (size_t i = 0; i < cnt; i++) {
		struct werr e;
		werr_clear(&e);
		/* Items of a list carry no kind: fine for kube_pv_parse. */
		if (kube_pv_parse(json_array_get(arr, i), &(*items)[*n], &e) == 0)
			(*n)++;
		else if (skipped)
			(*skipped)++;
	}
	return 0;
}

int kube_pv_list_parse(const char *body, size_t len, struct kube_pv **items, size_t *n,
		       char rv[64], size_t *skipped, struct werr *err)
{
	return kube_pv_list_page_parse(body, len, items, n, rv, NULL, skipped, err);
}

/* metadata.continue: opaque to us, but it goes back into a URL (escaped)
 * and into logs: printable ASCII only, bounded; anything else is refused. */
static int continue_token(json_t *md, char cont[KUBE_CONTINUE_MAX], struct werr *err)
{
	cont[0] = '\0';
	json_t *c = json_object_get(md, "continue");
	if (!c || json_is_null(c) || (json_is_string(c) && !json_string_length(c)))
		return 0;
	if (!get_str(c, cont, KUBE_CONTINUE_MAX, true))
		return werr_set(err, -EBADMSG, "kube: a list page whose continue token is not a string of at most %d bytes",
				KUBE_CONTINUE_MAX - 1);
	for (const char *p = cont; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			cont[0] = '\0';
			return werr_set(err, -EBADMSG, "kube: a list page whose continue token holds a space or control character");
		}
	return 0;
}

int kube_pv_list_page_parse(const char *body, size_t len, struct kube_pv **items, size_t *n,
			    char rv[64], char cont[KUBE_CONTINUE_MAX], size_t *skipped,
			    struct werr *err)
{
	json_t *j = load_bounded(body, len, KUBE_RESPONSE_MAX);
	int r = kube_pv_list_from_json(j, items, n, rv, skipped, err);
	if (r == 0 && cont) {
		r = continue_token(json_object_get(j, "metadata"), cont, err);
		if (r < 0) {
			free(*items);
			*items = NULL;
			*n = 0;
		}
	}
	json_decref(j);
	return r;
}

int kube_watch_event_parse(const char *line, size_t len, struct kube_watch_event *ev,
			   struct werr *err)
{
	memset(ev, 0, sizeof(*ev));
	json_t *j = load_bounded(line, len, KUBE_LINE_MAX);
	int r = 0;
	const char *type = str_at(j, "type");
	json_t *obj = json_is_object(j) ? json_object_get(j, "object") : NULL;
	if (!type || !json_is_object(obj)) {
		r = werr_set(err, -EBADMSG, "kube: a watch line that is not an event");
		goto out;
	}
	if (!strcmp(type, "ERROR")) {
		ev->type = KUBE_EV_ERROR;
		if (kube_status_from_json(obj, &ev->status) < 0)
			r = werr_set(err, -EBADMSG, "kube: an ERROR event without a Status");
		goto out;
	}
	if (!strcmp(type, "BOOKMARK")) {
		ev->type = KUBE_EV_BOOKMARK;
		json_t *md = json_object_get(obj, "metadata");
		if (!get_str(json_object_get(md, "resourceVersion"), ev->rv, sizeof(ev->rv), true) ||
		    !*ev->rv)
			r = werr_set(err, -EBADMSG, "kube: a BOOKMARK without resourceVersion");
		goto out;
	}
	if (!strcmp(type, "ADDED"))
		ev->type = KUBE_EV_ADDED;
	else if (!strcmp(type, "MODIFIED"))
		ev->type = KUBE_EV_MODIFIED;
	else if (!strcmp(type, "DELETED"))
		ev->type = KUBE_EV_DELETED;
	else {
		r = werr_set(err, -EBADMSG, "kube: a watch event of unknown type");
		goto out;
	}
	r = kube_pv_parse(obj, &ev->pv, err);
	if (r == 0 && !*ev->pv.resource_version)
		r = werr_set(err, -EBADMSG, "kube: a watch event without resourceVersion");
	if (r == 0)
		snprintf(ev->rv, sizeof(ev->rv), "%s", ev->pv.resource_version);
out:
	json_decref(j);
	return r;
}

/* ---------------------------------------------------------------- lines */

int kube_lines_feed(struct kube_lines *lb, const char *data, size_t n, kube_line_fn fn, void *arg)
{
	size_t max = lb->max ? lb->max : KUBE_LINE_MAX;
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		if (lb->len + take > max)
			return -EMSGSIZE;
		if (lb->len + take + 1 > lb->cap) {
			size_t cap = lb->cap ? lb->cap : 4096;
			while (cap < lb->len + take + 1)
				cap *= 2;
			char *nb = realloc(lb->buf, cap);
			if (!nb)
				return -ENOMEM;
			lb->buf = nb;
			lb->cap = cap;
		}
		memcpy(lb->buf + lb->len, data, take);
		lb->len += take;
		data += take;
		n -= take;
		if (!nl)
			break;
		data++; /* the newline */
		n--;
		size_t l = lb->len;
		while (l > 0 && lb->buf[l - 1] == '\r')
			l--;
		lb->len = 0;
		if (l == 0)
			continue;
		lb->buf[l] = '\0';
		int r = fn(arg, lb->buf, l);
		if (r < 0)
			return r;
	}
	return 0;
}

void kube_lines_reset(struct kube_lines *lb)
{
	lb->len = 0;
}

void kube_lines_free(struct kube_lines *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->len = lb->cap = 0;
}
