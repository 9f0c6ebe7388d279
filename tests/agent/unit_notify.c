/*
 * agent/notify.c: the notify protocol against listener sockets of the
 * test's own (a path socket and an abstract one): exactly the datagrams
 * sent arrive, one per call, byte for byte; unset NOTIFY_SOCKET is a no-op;
 * bad values and the watchdog variables.
 */
#include "tests/lib/unit.h"

#include "agent/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

struct listener {
	int fd;
	char name[108];            /* as NOTIFY_SOCKET spells it */
	char dir[64];
};

static void listen_path(struct listener *l)
{
	snprintf(l->dir, sizeof(l->dir), "/tmp/wrapd-unotify.XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(l->name, sizeof(l->name), "%s/notify", l->dir);
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", l->name);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void listen_abstract(struct listener *l)
{
	l->dir[0] = '\0';
	snprintf(l->name, sizeof(l->name), "@wrapd-unotify/%d/%ld", (int)getpid(), random());
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(l->name);
	memcpy(a.sun_path, l->name, n);
	a.sun_path[0] = '\0';
	assert_int_equal(bind(l->fd, (struct sockaddr *)&a,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0);
}

static void listener_close(struct listener *l)
{
	close(l->fd);
	if (l->dir[0]) {
		char p[128];
		snprintf(p, sizeof(p), "%s/notify", l->dir);
		unlink(p);
		rmdir(l->dir);
	}
}

/* The next datagram (must be there already: sends are synchronous on AF_UNIX). */
static ssize_t next_dgram(struct listener *l, char *buf, size_t n)
{
	ssize_t r = recv(l->fd, buf, n - 1, MSG_DONTWAIT);
	if (r >= 0)
		buf[r] = '\0';
	return r;
}

static void exact_datagrams(struct listener *l)
{
	struct notifier n;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(notifier_open_from(&n, l->name, NULL, NULL, getpid(), &e), 0);
	assert_true(notifier_active(&n));
	assert_int_equal(notifier_send(&n, "READY=1\nSTATUS=%s", "12 open, 1 waiting for Vault"), 0);
	assert_int_equal(notifier_send(&n, "STOPPING=1"), 0);
	assert_int_equal(notifier_send(&n, "WATCHDOG=1"), 0);
	char buf[2048];
	assert_int_equal(next_dgram(l, buf, sizeof(buf)), strlen("READY=1\nSTATUS=12 open, 1 waiting for Vault"));
	assert_string_equal(buf, "READY=1\nSTATUS=12 open, 1 waiting for Vault");
	assert_true(next_dgram(l, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "STOPPING=1");
	assert_true(next_dgram(l, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "WATCHDOG=1");
	/* Nothing more: one datagram per call, no extra bytes or messages. */
	assert_int_equal(next_dgram(l, buf, sizeof(buf)), -1);
	/* A status longer than the buffer is cut, still one datagram. */
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(notifier_send(&n, "STATUS=%s", big), 0);
	ssize_t r = next_dgram(l, buf, sizeof(buf));
	assert_true(r > 100 && r < 1024);
	assert_memory_equal(buf, "STATUS=xxx", 10);
	assert_int_equal(next_dgram(l, buf, sizeof(buf)), -1);
	notifier_close(&n);
	assert_false(notifier_active(&n));
}

static void path_socket(void **state)
{
	(void)state;
	struct listener l;
	listen_path(&l);
	exact_datagrams(&l);
	listener_close(&l);
}

static void abstract_socket(void **state)
{
	(void)state;
	struct listener l;
	listen_abstract(&l);
	/* The listener is bound to the exact name length: an address with a
	 * trailing NUL (or the '@' kept) would be another name, and the sends
	 * would fail with ECONNREFUSED. */
	exact_datagrams(&l);
	listener_close(&l);
}

static void environment(void **state)
{
	(void)state;
	struct listener l;
	listen_path(&l);
	setenv("NOTIFY_SOCKET", l.name, 1);
	unsetenv("WATCHDOG_USEC");
	struct notifier n;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(notifier_open(&n, &e), 0);
	assert_int_equal(notifier_send(&n, "READY=1"), 0);
	char buf[64];
	assert_true(next_dgram(&l, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "READY=1");
	assert_int_equal(n.watchdog_usec, 0);
	notifier_close(&n);
	unsetenv("NOTIFY_SOCKET");
	listener_close(&l);
}

static void unset_is_noop(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	struct notifier n;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(notifier_open(&n, &e), 0);
	assert_false(notifier_active(&n));
	assert_int_equal(n.fd, -1);
	assert_int_equal(notifier_send(&n, "READY=1"), 0);
	notifier_close(&n);
	assert_int_equal(notifier_open_from(&n, "", NULL, NULL, 1, &e), 0);
	assert_false(notifier_active(&n));
}

static void bad_values(void **state)
{
	(void)state;
	struct notifier n;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(notifier_open_from(&n, "relative/sock", NULL, NULL, 1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "NOTIFY_SOCKET=relative/sock"));
	assert_int_equal(notifier_open_from(&n, "@", NULL, NULL, 1, &e), -EINVAL);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(notifier_open_from(&n, longp, NULL, NULL, 1, &e), -EINVAL);
	assert_int_equal(notifier_open_from(&n, NULL, "12x", NULL, 1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "WATCHDOG_USEC=12x"));
	assert_int_equal(notifier_open_from(&n, NULL, "0", NULL, 1, &e), -EINVAL);
	/* A socket nobody listens on: the send fails, the caller goes on. */
	assert_int_equal(notifier_open_from(&n, "/nonexistent/wrapd/notify", NULL, NULL, 1, &e), 0);
	assert_true(notifier_send(&n, "READY=1") < 0);
	notifier_close(&n);
}

static void watchdog(void **state)
{
	(void)state;
	struct notifier n;
	struct werr e;
	werr_clear(&e);
	assert_int_equal(notifier_open_from(&n, NULL, "20000000", NULL, 42, &e), 0);
	assert_int_equal(n.watchdog_usec, 20000000);
	assert_int_equal(notifier_open_from(&n, NULL, "20000000", "42", 42, &e), 0);
	assert_int_equal(n.watchdog_usec, 20000000);
	/* WATCHDOG_PID names another process: not ours. */
	assert_int_equal(notifier_open_from(&n, NULL, "20000000", "43", 42, &e), 0);
	assert_int_equal(n.watchdog_usec, 0);
	assert_int_equal(notifier_open_from(&n, NULL, NULL, "42", 42, &e), 0);
	assert_int_equal(n.watchdog_usec, 0);
}

int main(void)
{
	srandom((unsigned)getpid());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(path_socket),
		cmocka_unit_test(abstract_socket),
		cmocka_unit_test(environment),
		cmocka_unit_test(unset_is_noop),
		cmocka_unit_test(bad_values),
		cmocka_unit_test(watchdog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
