/*
 * metrics: a registry of Prometheus metrics (counters, gauges, histograms
 * with labels) and its rendering in the Prometheus text exposition format,
 * version 0.0.4 (# HELP, # TYPE, escaped label values, cumulative histogram
 * buckets ending in +Inf, _sum and _count).
 *
 * It owns the numbers only: no global state (every call names its registry),
 * no I/O (agent/httpd.c serves the text). Updates and rendering may come from
 * any thread (one mutex per registry): the worker counts Vault requests while
 * the loop renders.
 *
 * Adding a metric elsewhere in the agent (the Kubernetes mode's
 * wrapd_volume_in_use{volume}, the online rekey's progress gauge): take the
 * registry with hooks_metrics(agent) (agent/agent.h), and
 *     metrics_gauge(reg, "wrapd_volume_in_use", "1 while a pod uses the volume",
 *                   METRIC_LABELS("volume"));
 *     metrics_set(reg, "wrapd_volume_in_use", 1, METRIC_LABELS("db"));
 *     metrics_remove(reg, "wrapd_volume_in_use", METRIC_LABELS("db"));  // volume gone
 * Registering the same name again with the same type and label names is
 * fine (it returns 0), so each part can register where it first needs it.
 */
#ifndef WRAPD_AGENT_METRICS_H
#define WRAPD_AGENT_METRICS_H

#include "common/common.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* A NULL-terminated list of label names, or of label values (in the names'
 * order): METRIC_LABELS("op", "code"). METRIC_NO_LABELS for none. */
#define METRIC_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define METRIC_NO_LABELS ((const char *const[]){NULL})

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24
#define METRICS_MAX_SERIES 4096 /* per family: a bound on what labels can grow */

struct metrics;
int metrics_new(struct metrics **out);
void metrics_free(struct metrics *r);

/* Registers a family. Names: [a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*
 * (and not "le" for a histogram). -EEXIST when the name is taken by another
 * type or other labels; -EINVAL for a bad name. */
int metrics_counter(struct metrics *r, const char *name, const char *help,
		    const char *const *labels);
int metrics_gauge(struct metrics *r, const char *name, const char *help,
		  const char *const *labels);
/* bounds: ascending upper bounds, +Inf is implicit. */
int metrics_histogram(struct metrics *r, const char *name, const char *help,
		      const char *const *labels, const double *bounds, size_t nbounds);

/* One series by its label values (made on first use; any byte string is a
 * valid value). -ENOENT: no such family; -EINVAL: wrong type or number of
 * values; -E2BIG: the family has METRICS_MAX_SERIES series already. */
int metrics_add(struct metrics *r, const char *name, double v, const char *const *values);
int metrics_set(struct metrics *r, const char *name, double v, const char *const *values);
int metrics_observe(struct metrics *r, const char *name, double v, const char *const *values);
/* Drops one series (a volume that left); 0 also when there was none. */
int metrics_remove(struct metrics *r, const char *name, const char *const *values);

/* The whole registry as text format 0.0.4 (families in registration order,
 * series in creation order). *text is malloc'ed and NUL-terminated. */
int metrics_render(struct metrics *r, char **text, size_t *len);

/* The Content-Type of what metrics_render returns. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
