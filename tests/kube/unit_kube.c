/* kube/: the JSON side (documents, name rule, readers, watch lines) and the
 * client's settings (URL resolution, token reread), without a server. */
#include "kube/kube_int.h"
#include "tests/lib/unit.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

static void test_pv_name_rule(void **state)
{
	(void)state;
	char n[254], n2[254];
	kube_pv_name("node-1", "data0", n);
	assert_string_equal(n, "wrapd-node-1-data0");
	kube_pv_name("worker.example.com", "vol-a", n);
	assert_string_equal(n, "wrapd-worker.example.com-vol-a");
	assert_true(kube_dns1123_subdomain(n));

	/* A node name that makes the plain name too long: a stable hashed name. */
	char node[254];
	memset(node, 'a', 250);
	node[250] = '\0';
	kube_pv_name(node, "v", n);
	assert_true(kube_dns1123_label(n));
	assert_true(strlen(n) <= 63);
	assert_memory_equal(n, "wrapd-aaaa", 10);
	kube_pv_name(node, "v", n2);
	assert_string_equal(n, n2);
	node[0] = 'b';
	kube_pv_name(node, "v", n2);
	assert_string_not_equal(n, n2);
	/* A label over 63 characters inside an otherwise short name. */
	char lab[80];
	memset(lab, 'x', 70);
	lab[70] = '\0';
	kube_pv_name(lab, "v", n);
	assert_true(kube_dns1123_label(n));
	/* Hostile names: upper case, dots at the ends, nothing usable at all. */
	kube_pv_name("Node_1.", "v", n);
	assert_true(kube_dns1123_subdomain(n));
	assert_string_not_equal(n, "wrapd-Node_1.-v");
	kube_pv_name("___", "---", n);
	assert_true(kube_dns1123_label(n));
	kube_pv_name("n", "v", n);
	kube_pv_name("n", "w", n2);
	assert_string_not_equal(n, n2);

	assert_false(kube_dns1123_label(""));
	assert_false(kube_dns1123_label("-a"));
	assert_false(kube_dns1123_label("a-"));
	assert_false(kube_dns1123_label("A"));
	assert_false(kube_dns1123_subdomain("a..b"));
	assert_false(kube_dns1123_subdomain(".a"));
}

static void test_label_value(void **state)
{
	(void)state;
	char v[64], v2[64];
	kube_label_value("node-1.example", v);
	assert_string_equal(v, "node-1.example");
	char node[200];
	memset(node, 'n', 199);
	node[199] = '\0';
	kube_label_value(node, v);
	assert_true(strlen(v) <= 63);
	kube_label_value(node, v2);
	assert_string_equal(v, v2);
	kube_label_value("-x-", v);
	assert_true(v[0] != '-' && v[strlen(v) - 1] != '-');
	kube_label_value("a b/c", v);
	assert_null(strchr(v, ' '));
	assert_null(strchr(v, '/'));
}

static json_t *path(json_t *j, const char *p)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", p);
	for (char *save = NULL, *t = strtok_r(buf, "/", &save); t && j; t = strtok_r(NULL, "/", &save)) {
		if (json_is_array(j))
			j = json_array_get(j, (size_t)atoi(t));
		else
			j = json_object_get(j, t);
	}
	return j;
}

static const char *spath(json_t *j, const char *p)
{
	json_t *v = path(j, p);
	assert_non_null(v);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static void test_pv_document(void **state)
{
	(void)state;
	struct kube_pv_spec s = {.node = "node-1", .volume = "data0", .capacity_bytes = 1073741824ull - 16 * 1024 * 1024,
				 .storage_class = "encrypted", .fs_type = "ext4",
				 .luks_uuid = "0a1b2c3d-0000-4000-8000-000000000001"};
	json_t *d = kube_pv_build(&s);
	assert_non_null(d);
	assert_string_equal(spath(d, "kind"), "PersistentVolume");
	assert_string_equal(spath(d, "apiVersion"), "v1");
	assert_string_equal(spath(d, "metadata/name"), "wrapd-node-1-data0");
	json_t *labels = path(d, "metadata/labels");
	assert_string_equal(json_string_value(json_object_get(labels, "app.kubernetes.io/managed-by")), "wrapd");
	assert_string_equal(json_string_value(json_object_get(labels, "wrapd.io/node")), "node-1");
	json_t *ann = path(d, "metadata/annotations");
	assert_string_equal(json_string_value(json_object_get(ann, "pv.kubernetes.io/provisioned-by")),
			    "wrapd.io/wrapd");
	assert_string_equal(json_string_value(json_object_get(ann, "wrapd.io/luks-uuid")), s.luks_uuid);
	assert_string_equal(spath(d, "spec/capacity/storage"), "1056964608");
	assert_string_equal(spath(d, "spec/volumeMode"), "Filesystem");
	assert_string_equal(spath(d, "spec/accessModes/0"), "ReadWriteOnce");
	assert_int_equal(json_array_size(path(d, "spec/accessModes")), 1);
	assert_string_equal(spath(d, "spec/persistentVolumeReclaimPolicy"), "Delete");
	assert_string_equal(spath(d, "spec/storageClassName"), "encrypted");
	assert_string_equal(spath(d, "spec/local/path"), "/dev/mapper/data0");
	assert_string_equal(spath(d, "spec/local/fsType"), "ext4");
	json_t *me = path(d, "spec/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions/0");
	assert_string_equal(json_string_value(json_object_get(me, "key")), "kubernetes.io/hostname");
	assert_string_equal(json_string_value(json_object_get(me, "operator")), "In");
	assert_string_equal(spath(me, "values/0"), "node-1");

	/* What we build, we read back the same. */
	struct kube_pv pv;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(kube_pv_parse(d, &pv, &e), 0);
	assert_string_equal(pv.name, "wrapd-node-1-data0");
	assert_true(pv.managed);
	assert_true(pv.provisioned_by_us);
	assert_string_equal(pv.node_label, "node-1");
	assert_string_equal(pv.volume, "data0");
	assert_string_equal(pv.luks_uuid, s.luks_uuid);
	assert_int_equal(pv.reclaim, KUBE_RECLAIM_DELETE);
	assert_false(pv.block);
	assert_true(pv.capacity_bytes == s.capacity_bytes);
	assert_int_equal(pv.phase, KUBE_PHASE_NONE);
	json_decref(d);

	s.block = true;
	s.retain = true;
	s.storage_class = "fast";
	d = kube_pv_build(&s);
	assert_string_equal(spath(d, "spec/volumeMode"), "Block");
	assert_null(path(d, "spec/local/fsType"));
	assert_string_equal(spath(d, "spec/persistentVolumeReclaimPolicy"), "Retain");
	assert_string_equal(spath(d, "spec/storageClassName"), "fast");
	assert_int_equal(kube_pv_parse(d, &pv, &e), 0);
	assert_true(pv.block);
	assert_int_equal(pv.reclaim, KUBE_RECLAIM_RETAIN);
	json_decref(d);
}

static void test_event_document(void **state)
{
	(void)state;
	struct kube_event_spec s = {.ns = "default", .pv_name = "wrapd-n-v", .pv_uid = "u-1",
				    .warning = true, .reason = "EraseRefused",
				    .message = "data0 is in use by pod 1234", .node = "n",
				    .now = 86400, .unique = 0xabc};
	json_t *d = kube_event_build(&s);
	assert_non_null(d);
	assert_string_equal(spath(d, "kind"), "Event");
	assert_string_equal(spath(d, "metadata/name"), "wrapd-n-v.abc");
	assert_string_equal(spath(d, "metadata/namespace"), "default");
	assert_string_equal(spath(d, "involvedObject/kind"), "PersistentVolume");
	assert_string_equal(spath(d, "involvedObject/name"), "wrapd-n-v");
	assert_string_equal(spath(d, "involvedObject/uid"), "u-1");
	assert_string_equal(spath(d, "type"), "Warning");
	assert_string_equal(spath(d, "reason"), "EraseRefused");
	assert_string_equal(spath(d, "firstTimestamp"), "1970-01-02T00:00:00Z");
	assert_string_equal(spath(d, "source/host"), "n");
	json_decref(d);
}

static void test_status(void **state)
{
	(void)state;
	struct kube_status st;
	const char *b = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
			"\"message\":\"persistentvolumes \\\"x\\\" already exists\\u001b[2J\","
			"\"reason\":\"AlreadyExists\",\"code\":409}";
	assert_int_equal(kube_status_parse(b, strlen(b), &st), 0);
	assert_int_equal(st.code, 409);
	assert_string_equal(st.reason, "AlreadyExists");
	assert_null(strchr(st.message, 0x1b)); /* control characters never reach a log */
	assert_non_null(strstr(st.message, "already exists"));
	const char *bad[] = {"", "null", "[]", "{\"kind\":\"PersistentVolume\"}", "{\"code\":409}",
			     "{\"kind\":\"Status\",\"kind\":\"Status\"}", "{\"kind\":5}", "{"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(kube_status_parse(bad[i], strlen(bad[i]), &st), -EBADMSG);
	const char *big = "{\"kind\":\"Status\",\"code\":99999999999999}";
	assert_int_equal(kube_status_parse(big, strlen(big), &st), 0);
	assert_int_equal(st.code, 0);
}

#define PV_OBJ(name, rv, phase, extra)                                                              \
	"{\"kind\":\"PersistentVolume\",\"metadata\":{\"name\":\"" name "\",\"uid\":\"u\","         \
	"\"resourceVersion\":\"" rv "\",\"labels\":{\"app.kubernetes.io/managed-by\":\"wrapd\","   \
	"\"wrapd.io/node\":\"n\"}},\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},"                  \
	"\"persistentVolumeReclaimPolicy\":\"Delete\",\"local\":{\"path\":\"/dev/mapper/v\"}" extra \
	"},\"status\":{\"phase\":\"" phase "\"}}"

static void test_watch_events(void **state)
{
	(void)state;
	struct kube_watch_event ev;
	struct werr e;
	werr_clear(&e);
	const char *l = "{\"type\":\"MODIFIED\",\"object\":" PV_OBJ(
		"wrapd-n-v", "42", "Released",
		",\"claimRef\":{\"namespace\":\"default\",\"name\":\"data\"}") "}";
	assert_int_equal(kube_watch_event_parse(l, strlen(l), &ev, &e), 0);
	assert_int_equal(ev.type, KUBE_EV_MODIFIED);
	assert_string_equal(ev.rv, "42");
	assert_int_equal(ev.pv.phase, KUBE_PHASE_RELEASED);
	assert_string_equal(ev.pv.claim, "default/data");
	assert_true(ev.pv.capacity_bytes == 1073741824ull);
	assert_string_equal(ev.pv.volume, "v");

	l = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"PersistentVolume\",\"metadata\":{\"resourceVersion\":\"77\"}}}";
	assert_int_equal(kube_watch_event_parse(l, strlen(l), &ev, &e), 0);
	assert_int_equal(ev.type, KUBE_EV_BOOKMARK);
	assert_string_equal(ev.rv, "77");

	l = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Expired\",\"code\":410,\"message\":\"too old resource version: 1 (3171407)\"}}";
	assert_int_equal(kube_watch_event_parse(l, strlen(l), &ev, &e), 0);
	assert_int_equal(ev.type, KUBE_EV_ERROR);
	assert_int_equal(ev.status.code, 410);
	assert_string_equal(ev.status.reason, "Expired");

	const char *bad[] = {
		"{}", "{\"type\":\"ADDED\"}", "{\"type\":\"ADDED\",\"object\":[]}",
		"{\"type\":\"SOMETHING\",\"object\":{}}", "{\"type\":\"BOOKMARK\",\"object\":{}}",
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"PersistentVolume\"}}",
		"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"1\"}}}",
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"UPPER\",\"resourceVersion\":\"1\"}}}",
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"ok\"}}}",
		"{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"ok\",\"resourceVersion\":\"1\"}}}",
		"not json", "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\u0000b\",\"resourceVersion\":\"1\"}}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		werr_clear(&e);
		assert_int_equal(kube_watch_event_parse(bad[i], strlen(bad[i]), &ev, &e), -EBADMSG);
		assert_true(e.msg[0] != '\0');
	}
	/* Hostile field types are ignored, never trusted. */
	l = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"5\","
	    "\"labels\":{\"app.kubernetes.io/managed-by\":7},\"annotations\":[]},"
	    "\"spec\":{\"local\":{\"path\":\"/dev/mapper/../sda\"},\"capacity\":{\"storage\":\"99999999999999Ei\"}},"
	    "\"status\":{\"phase\":\"Weird\"}}}";
	assert_int_equal(kube_watch_event_parse(l, strlen(l), &ev, &e), 0);
	assert_false(ev.pv.managed);
	assert_string_equal(ev.pv.volume, "");
	assert_true(ev.pv.capacity_bytes == 0);
	assert_int_equal(ev.pv.phase, KUBE_PHASE_OTHER);
}

static void test_quantities(void **state)
{
	(void)state;
	static const struct { const char *q; uint64_t v; } t[] = {
		{"1073741824", 1073741824ull}, {"1Gi", 1ull << 30}, {"2Ti", 2ull << 40},
		{"5k", 5000}, {"3M", 3000000}, {"7Ki", 7168}, {"1Ei", 1ull << 60}, {"16Ei", 0},
		{"1K", 0}, {"1ki", 0}, {"1.5Gi", 0}, {"-1", 0}, {"", 0}, {"Gi", 0}, {"1Gix", 0},
		{"18446744073709551616", 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		char doc[512];
		snprintf(doc, sizeof(doc),
			 "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"capacity\":{\"storage\":\"%s\"}}}", t[i].q);
		json_error_t je;
		json_t *j = json_loads(doc, 0, &je);
		struct kube_pv pv;
		assert_int_equal(kube_pv_parse(j, &pv, NULL), 0);
		if (pv.capacity_bytes != t[i].v)
			fail_msg("quantity %s: %" PRIu64 ", expected %" PRIu64, t[i].q, pv.capacity_bytes, t[i].v);
		json_decref(j);
	}
}

struct lines_seen {
	char got[8][64];
	int n;
};

static int collect(void *arg, const char *line, size_t len)
{
	struct lines_seen *s = arg;
	assert_true(len < 64 && s->n < 8);
	assert_int_equal(strlen(line), len);
	memcpy(s->got[s->n++], line, len + 1);
	return 0;
}

static void test_lines(void **state)
{
	(void)state;
	struct kube_lines lb = {.max = 32};
	struct lines_seen s = {0};
	/* Split anywhere, CRLF, empty lines, and the partial tail waits. */
	const char *in = "{\"a\":1}\r\n\n{\"b\":2}\n{\"c\"";
	for (const char *p = in; *p; p++)
		assert_int_equal(kube_lines_feed(&lb, p, 1, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.got[0], "{\"a\":1}");
	assert_string_equal(s.got[1], "{\"b\":2}");
	assert_int_equal(kube_lines_feed(&lb, ":3}\n", 4, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.got[2], "{\"c\":3}");
	/* A line longer than max is refused, even in pieces. */
	char big[40];
	memset(big, 'x', sizeof(big));
	assert_int_equal(kube_lines_feed(&lb, big, 20, collect, &s), 0);
	assert_int_equal(kube_lines_feed(&lb, big, 20, collect, &s), -EMSGSIZE);
	kube_lines_reset(&lb);
	assert_int_equal(kube_lines_feed(&lb, "ok\n", 3, collect, &s), 0);
	assert_string_equal(s.got[3], "ok");
	kube_lines_free(&lb);
}

static void test_list(void **state)
{
	(void)state;
	const char *b = "{\"kind\":\"PersistentVolumeList\",\"metadata\":{\"resourceVersion\":\"900\"},\"items\":["
		PV_OBJ("wrapd-n-a", "10", "Available", "") ","
		"{\"metadata\":{\"name\":\"Bad Name\"}}," PV_OBJ("wrapd-n-b", "11", "Bound", "") "]}";
	struct kube_pv *it;
	size_t n, skipped;
	char rv[64];
	struct werr e;
	werr_clear(&e);
	assert_int_equal(kube_pv_list_parse(b, strlen(b), &it, &n, rv, &skipped, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(skipped, 1);
	assert_string_equal(rv, "900");
	assert_string_equal(it[0].name, "wrapd-n-a");
	assert_int_equal(it[1].phase, KUBE_PHASE_BOUND);
	free(it);
	const char *empty = "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":null}";
	assert_int_equal(kube_pv_list_parse(empty, strlen(empty), &it, &n, rv, NULL, &e), 0);
	assert_int_equal(n, 0);
	free(it);
	const char *bad[] = {"{\"items\":[]}", "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}",
			     "[]", "", "{\"metadata\":{\"resourceVersion\":5},\"items\":[]}"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(kube_pv_list_parse(bad[i], strlen(bad[i]), &it, &n, rv, NULL, &e), -EBADMSG);
		assert_null(it);
	}
}

static const char *fake_env_vals[4];
static const char *fake_env(const char *name)
{
	if (!strcmp(name, "KUBERNETES_SERVICE_HOST"))
		return fake_env_vals[0];
	if (!strcmp(name, "KUBERNETES_SERVICE_PORT"))
		return fake_env_vals[1];
	return NULL;
}

static void test_resolve_url(void **state)
{
	(void)state;
	struct kube_client_opts o = {.getenv = fake_env};
	char *u;
	struct werr e;
	werr_clear(&e);
	fake_env_vals[0] = NULL;
	fake_env_vals[1] = NULL;
	assert_int_equal(kube_resolve_url(&o, &u, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "kube_api_url"));
	fake_env_vals[0] = "10.96.0.1";
	fake_env_vals[1] = "443";
	assert_int_equal(kube_resolve_url(&o, &u, &e), 0);
	assert_string_equal(u, "https://10.96.0.1:443");
	free(u);
	fake_env_vals[0] = "fd00::1";
	assert_int_equal(kube_resolve_url(&o, &u, &e), 0);
	assert_string_equal(u, "https://[fd00::1]:443");
	free(u);
	fake_env_vals[1] = "443/x";
	assert_int_equal(kube_resolve_url(&o, &u, &e), -EINVAL);
	fake_env_vals[1] = "443";
	fake_env_vals[0] = "evil/host";
	assert_int_equal(kube_resolve_url(&o, &u, &e), -EINVAL);

	static const struct { const char *url; int rc; const char *out; } t[] = {
		{"http://127.0.0.1:8080/", 0, "http://127.0.0.1:8080"},
		{"http://localhost:1", 0, "http://localhost:1"},
		{"http://[::1]:1", 0, "http://[::1]:1"},
		{"https://kube.example:6443", 0, "https://kube.example:6443"},
		{"http://kube.example:8080", -EINVAL, NULL},
		{"http://localhost.example.com:8080", -EINVAL, NULL},
		{"http://10.0.0.1:8080", -EINVAL, NULL},
		{"ftp://127.0.0.1/", -EINVAL, NULL},
		{"not a url", -EINVAL, NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		o.api_url = t[i].url;
		werr_clear(&e);
		int r = kube_resolve_url(&o, &u, &e);
		if (r != t[i].rc)
			fail_msg("%s: %d (%s)", t[i].url, r, e.msg);
		if (t[i].out) {
			assert_string_equal(u, t[i].out);
			free(u);
		}
	}
}

static void write_token(const char *p, const char *text)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.new", p);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(rename(tmp, p), 0); /* as kubelet's atomic writer swaps it */
}

static void test_token_reread(void **state)
{
	(void)state;
	char dir[] = "/tmp/unit_kube.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char tf[4096];
	snprintf(tf, sizeof(tf), "%s/token", dir);
	struct kube_client_opts o = {.api_url = "http://127.0.0.1:1", .token_file = tf};
	struct kube_client *kc;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(kube_client_new(&kc, &o, &e), 0);
	/* No file: no token, not an error. */
	assert_int_equal(kube_token_refresh(kc, &e), 0);
	assert_null(kc->token);
	write_token(tf, "tok-one\n");
	assert_int_equal(kube_token_refresh(kc, &e), 0);
	assert_string_equal(kc->token, "tok-one");
	write_token(tf, "tok-two");
	assert_int_equal(kube_token_refresh(kc, &e), 0);
	assert_string_equal(kc->token, "tok-two");
	/* Unchanged file: not read again (its content cannot change without a
	 * change of size, times or identity). */
	char *before = kc->token;
	assert_int_equal(kube_token_refresh(kc, &e), 0);
	assert_ptr_equal(kc->token, before);
	write_token(tf, "two words");
	assert_int_equal(kube_token_refresh(kc, &e), -EINVAL);
	write_token(tf, "tok-three");
	chmod(tf, 0622);
	assert_int_equal(kube_token_refresh(kc, &e), -EPERM);
	kube_client_free(kc);
	unlink(tf);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pv_name_rule),   cmocka_unit_test(test_label_value),
		cmocka_unit_test(test_pv_document),    cmocka_unit_test(test_event_document),
		cmocka_unit_test(test_status),         cmocka_unit_test(test_watch_events),
		cmocka_unit_test(test_quantities),     cmocka_unit_test(test_lines),
		cmocka_unit_test(test_list),           cmocka_unit_test(test_resolve_url),
		cmocka_unit_test(test_token_reread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
