/*
 * agent/metrics.c: the text format 0.0.4 byte for byte for known inputs —
 * HELP/TYPE lines, label value escaping (backslash, quote, newline), HELP
 * escaping, cumulative histogram buckets ending in +Inf, _sum and _count,
 * number formatting — and the registry's rules (types, labels, limits,
 * re-registration, removal, updates from two threads).
 */
#include "tests/lib/unit.h"

#include "agent/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static char *render(struct metrics *m)
{
	char *t = NULL;
	size_t n = 0;
	assert_int_equal(metrics_render(m, &t, &n), 0);
	assert_non_null(t);
	assert_int_equal(strlen(t), n);
	return t;
}

static void counter_gauge_escaping(void **state)
{
	(void)state;
	struct metrics *m;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_counter(m, "x_requests_total", "Requests\nby \"op\" \\ code",
					 METRIC_LABELS("op", "code")), 0);
	assert_int_equal(metrics_gauge(m, "x_volumes", "Volumes by state", METRIC_LABELS("state")), 0);
	assert_int_equal(metrics_add(m, "x_requests_total", 1, METRIC_LABELS("decrypt", "200")), 0);
	assert_int_equal(metrics_add(m, "x_requests_total", 2, METRIC_LABELS("decrypt", "200")), 0);
	assert_int_equal(metrics_add(m, "x_requests_total", 1, METRIC_LABELS("a\"b\\c\nd", "0")), 0);
	assert_int_equal(metrics_set(m, "x_volumes", 12, METRIC_LABELS("open")), 0);
	assert_int_equal(metrics_set(m, "x_volumes", 0, METRIC_LABELS("waiting for Vault")), 0);
	assert_int_equal(metrics_set(m, "x_volumes", 0.25, METRIC_LABELS("odd")), 0);
	char *t = render(m);
	assert_string_equal(t,
		"# HELP x_requests_total Requests\\nby \"op\" \\\\ code\n"
		"# TYPE x_requests_total counter\n"
		"x_requests_total{op=\"decrypt\",code=\"200\"} 3\n"
		"x_requests_total{op=\"a\\\"b\\\\c\\nd\",code=\"0\"} 1\n"
		"# HELP x_volumes Volumes by state\n"
		"# TYPE x_volumes gauge\n"
		"x_volumes{state=\"open\"} 12\n"
		"x_volumes{state=\"waiting for Vault\"} 0\n"
		"x_volumes{state=\"odd\"} 0.25\n");
	free(t);
	metrics_free(m);
}

static void histogram_cumulative(void **state)
{
	(void)state;
	struct metrics *m;
	assert_int_equal(metrics_new(&m), 0);
	static const double b[] = {0.1, 1, 10};
	assert_int_equal(metrics_histogram(m, "x_seconds", "Durations", METRIC_LABELS("op"), b, 3), 0);
	assert_int_equal(metrics_histogram(m, "x_open_seconds", "Opens", METRIC_NO_LABELS, b, 3), 0);
	const double obs[] = {0.05, 0.1, 0.5, 5, 50, 2.5};
	for (size_t i = 0; i < ARRAY_SIZE(obs); i++)
		assert_int_equal(metrics_observe(m, "x_seconds", obs[i], METRIC_LABELS("decrypt")), 0);
	char *t = render(m);
	assert_string_equal(t,
		"# HELP x_seconds Durations\n"
		"# TYPE x_seconds histogram\n"
		"x_seconds_bucket{op=\"decrypt\",le=\"0.1\"} 2\n"   /* 0.05 and 0.1 (le is <=) */
		"x_seconds_bucket{op=\"decrypt\",le=\"1\"} 3\n"
		"x_seconds_bucket{op=\"decrypt\",le=\"10\"} 5\n"
		"x_seconds_bucket{op=\"decrypt\",le=\"+Inf\"} 6\n"
		"x_seconds_sum{op=\"decrypt\"} 58.15\n"
		"x_seconds_count{op=\"decrypt\"} 6\n"
		/* No labels: the series exists before any observation. */
		"# HELP x_open_seconds Opens\n"
		"# TYPE x_open_seconds histogram\n"
		"x_open_seconds_bucket{le=\"0.1\"} 0\n"
		"x_open_seconds_bucket{le=\"1\"} 0\n"
		"x_open_seconds_bucket{le=\"10\"} 0\n"
		"x_open_seconds_bucket{le=\"+Inf\"} 0\n"
		"x_open_seconds_sum 0\n"
		"x_open_seconds_count 0\n");
	free(t);
	metrics_free(m);
}

static void numbers(void **state)
{
	(void)state;
	struct metrics *m;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_gauge(m, "g", "", METRIC_LABELS("k")), 0);
	metrics_set(m, "g", 160, METRIC_LABELS("int"));
	metrics_set(m, "g", 1e20, METRIC_LABELS("big"));
	metrics_set(m, "g", 0.1, METRIC_LABELS("tenth"));
	metrics_set(m, "g", -3.5, METRIC_LABELS("neg"));
	metrics_set(m, "g", 1.0 / 0.0, METRIC_LABELS("inf"));
	metrics_set(m, "g", 0.0 / 0.0, METRIC_LABELS("nan"));
	char *t = render(m);
	assert_string_equal(t, "# HELP g \n# TYPE g gauge\n"
			       "g{k=\"int\"} 160\n"
			       "g{k=\"big\"} 1e+20\n"
			       "g{k=\"tenth\"} 0.1\n"
			       "g{k=\"neg\"} -3.5\n"
			       "g{k=\"inf\"} +Inf\n"
			       "g{k=\"nan\"} NaN\n");
	free(t);
	metrics_free(m);
}

static void registry_rules(void **state)
{
	(void)state;
	struct metrics *m;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_gauge(m, "wrapd_volume_in_use", "h", METRIC_LABELS("volume")), 0);
	/* The same again is fine; another type or other labels are not. */
	assert_int_equal(metrics_gauge(m, "wrapd_volume_in_use", "h", METRIC_LABELS("volume")), 0);
	assert_int_equal(metrics_counter(m, "wrapd_volume_in_use", "h", METRIC_LABELS("volume")), -EEXIST);
	assert_int_equal(metrics_gauge(m, "wrapd_volume_in_use", "h", METRIC_LABELS("pod")), -EEXIST);
	/* Names and labels. */
	assert_int_equal(metrics_gauge(m, "9bad", "h", METRIC_NO_LABELS), -EINVAL);
	assert_int_equal(metrics_gauge(m, "bad-name", "h", METRIC_NO_LABELS), -EINVAL);
	assert_int_equal(metrics_gauge(m, "ok:name", "h", METRIC_LABELS("bad:label")), -EINVAL);
	assert_int_equal(metrics_gauge(m, "ok2", "h", METRIC_LABELS("__reserved")), -EINVAL);
	static const double b[] = {1, 2};
	static const double unsorted[] = {2, 1};
	assert_int_equal(metrics_histogram(m, "h1", "h", METRIC_LABELS("le"), b, 2), -EINVAL);
	assert_int_equal(metrics_histogram(m, "h2", "h", METRIC_NO_LABELS, unsorted, 2), -EINVAL);
	/* Updates: unknown family, wrong type, wrong label count, counters go up. */
	assert_int_equal(metrics_set(m, "nope", 1, METRIC_NO_LABELS), -ENOENT);
	assert_int_equal(metrics_observe(m, "wrapd_volume_in_use", 1, METRIC_LABELS("a")), -EINVAL);
	assert_int_equal(metrics_set(m, "wrapd_volume_in_use", 1, METRIC_NO_LABELS), -EINVAL);
	assert_int_equal(metrics_set(m, "wrapd_volume_in_use", 1, METRIC_LABELS("a", "b")), -EINVAL);
	assert_int_equal(metrics_counter(m, "c_total", "h", METRIC_NO_LABELS), 0);
	assert_int_equal(metrics_add(m, "c_total", -1, METRIC_NO_LABELS), -EINVAL);
	assert_int_equal(metrics_set(m, "c_total", 5, METRIC_NO_LABELS), -EINVAL);
	/* Removal: a volume that left. */
	metrics_set(m, "wrapd_volume_in_use", 1, METRIC_LABELS("db"));
	metrics_set(m, "wrapd_volume_in_use", 0, METRIC_LABELS("logs"));
	assert_int_equal(metrics_remove(m, "wrapd_volume_in_use", METRIC_LABELS("db")), 0);
	assert_int_equal(metrics_remove(m, "wrapd_volume_in_use", METRIC_LABELS("db")), 0);
	char *t = render(m);
	assert_null(strstr(t, "volume=\"db\""));
	assert_non_null(strstr(t, "wrapd_volume_in_use{volume=\"logs\"} 0\n"));
	free(t);
	/* The bound on series per family. */
	char name[32];
	int rc = 0;
	for (int i = 0; i <= METRICS_MAX_SERIES && rc == 0; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		rc = metrics_set(m, "wrapd_volume_in_use", 1, METRIC_LABELS(name));
	}
	assert_int_equal(rc, -E2BIG);
	metrics_free(m);
}

static void *adder(void *arg)
{
	for (int i = 0; i < 20000; i++)
		metrics_add(arg, "t_total", 1, METRIC_LABELS("x"));
	return NULL;
}

static void two_threads(void **state)
{
	(void)state;
	struct metrics *m;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_counter(m, "t_total", "h", METRIC_LABELS("k")), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, adder, m), 0);
	for (int i = 0; i < 20000; i++) {
		metrics_add(m, "t_total", 1, METRIC_LABELS("x"));
		if (i % 2000 == 0)
			free(render(m));
	}
	pthread_join(th, NULL);
	char *t = render(m);
	assert_non_null(strstr(t, "t_total{k=\"x\"} 40000\n"));
	free(t);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counter_gauge_escaping),
		cmocka_unit_test(histogram_cumulative),
		cmocka_unit_test(numbers),
		cmocka_unit_test(registry_rules),
		cmocka_unit_test(two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
