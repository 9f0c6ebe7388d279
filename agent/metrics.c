/*
 * The metrics registry and its text format 0.0.4 (agent/metrics.h).
 * Families and series are small arrays searched linearly: the agent has a
 * handful of families and, per family, a few dozen series at most (one per
 * volume for per-volume gauges, bounded by METRICS_MAX_SERIES).
 */
#include "agent/metrics.h"

#include <math.h>
#include <pthread.h>

struct series {
	char **values;             /* one per label name */
	double v;                  /* counter, gauge */
	uint64_t *buckets;         /* histogram: per bound, not cumulative */
	uint64_t count;
	double sum;
};

struct family {
	char *name, *help;
	enum metric_type type;
	char **labels;
	size_t nlabels;
	double bounds[METRICS_MAX_BUCKETS];
	size_t nbounds;
	struct series *s;
	size_t n, cap;
};

struct metrics {
	pthread_mutex_t mu;
	struct family *f;
	size_t n, cap;
};

int metrics_new(struct metrics **out)
{
	struct metrics *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	*out = r;
	return 0;
}

static void strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void series_clear(struct family *f, struct series *s)
{
	strv_free(s->values, f->nlabels);
	free(s->buckets);
}

void metrics_free(struct metrics *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		struct family *f = &r->f[i];
		for (size_t k = 0; k < f->n; k++)
			series_clear(f, &f->s[k]);
		free(f->s);
		strv_free(f->labels, f->nlabels);
		free(f->name);
		free(f->help);
	}
	free(r->f);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (p > s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static size_t strv_len(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

static struct family *find(struct metrics *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->f[i].name, name))
			return &r->f[i];
	return NULL;
}

static bool same_labels(const struct family *f, const char *const *labels)
{
	if (strv_len(labels) != f->nlabels)
		return false;
	for (size_t i = 0; i < f->nlabels; i++)
		if (strcmp(f->labels[i], labels[i]))
			return false;
	return true;
}

static char **strv_dup(const char *const *v, size_t n)
{
	char **d = calloc(n ? n : 1, sizeof(*d));
	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!(d[i] = strdup(v[i]))) {
			strv_free(d, i);
			return NULL;
		}
	}
	return d;
}

static struct series *lookup(struct family *f, const char *const *values, bool make, int *rc);

static int reg(struct metrics *r, const char *name, const char *help, enum metric_type t,
	       const char *const *labels, const double *bounds, size_t nb)
{
	size_t nl = strv_len(labels);
	if (!valid_name(name, true) || nl > METRICS_MAX_LABELS || nb > METRICS_MAX_BUCKETS)
		return -EINVAL;
	for (size_t i = 0; i < nl; i++) {
		if (!valid_name(labels[i], false) || !strncmp(labels[i], "__", 2) ||
		    (t == METRIC_HISTOGRAM && !strcmp(labels[i], "le")))
			return -EINVAL;
	}
	for (size_t i = 0; i < nb; i++)
		if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
			return -EINVAL;
	pthread_mutex_lock(&r->mu);
	int rc = 0;
	struct family *f = find(r, name);
	if (f) {
		rc = f->type == t && same_labels(f, labels) ? 0 : -EEXIST;
		goto out;
	}
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 8;
		struct family *nf = realloc(r->f, nc * sizeof(*nf));
		if (!nf) {
			rc = -ENOMEM;
			goto out;
		}
		r->f = nf;
		r->cap = nc;
	}
	f = &r->f[r->n];
	memset(f, 0, sizeof(*f));
	f->type = t;
	f->nlabels = nl;
	f->nbounds = nb;
	if (nb)
		memcpy(f->bounds, bounds, nb * sizeof(*bounds));
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->labels = strv_dup(labels, nl);
	if (!f->name || !f->help || !f->labels) {
		free(f->name);
		free(f->help);
		strv_free(f->labels, nl);
		rc = -ENOMEM;
		goto out;
	}
	r->n++;
	/* A family without labels has its one series from the start: a
	 * histogram nothing was observed in yet shows zero counts. */
	if (!nl && !lookup(f, METRIC_NO_LABELS, true, &rc))
		rc = rc < 0 ? rc : -ENOMEM;
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int metrics_counter(struct metrics *r, const char *name, const char *help,
		    const char *const *labels)
{
	return reg(r, name, help, METRIC_COUNTER, labels, NULL, 0);
}

int metrics_gauge(struct metrics *r, const char *name, const char *help, const char *const *labels)
{
	return reg(r, name, help, METRIC_GAUGE, labels, NULL, 0);
}

int metrics_histogram(struct metrics *r, const char *name, const char *help,
		      const char *const *labels, const double *bounds, size_t nbounds)
{
	return reg(r, name, help, METRIC_HISTOGRAM, labels, bounds, nbounds);
}

static struct series *lookup(struct family *f, const char *const *values, bool make, int *rc)
{
	if (strv_len(values) != f->nlabels) {
		*rc = -EINVAL;
		return NULL;
	}
	for (size_t k = 0; k < f->n; k++) {
		size_t i = 0;
		while (i < f->nlabels && !strcmp(f->s[k].values[i], values[i]))
			i++;
		if (i == f->nlabels)
			return &f->s[k];
	}
	*rc = 0;
	if (!make)
		return NULL;
	if (f->n >= METRICS_MAX_SERIES) {
		*rc = -E2BIG;
		return NULL;
	}
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 8;
		struct series *ns = realloc(f->s, nc * sizeof(*ns));
		if (!ns) {
			*rc = -ENOMEM;
			return NULL;
		}
		f->s = ns;
		f->cap = nc;
	}
	struct series *s = &f->s[f->n];
	memset(s, 0, sizeof(*s));
	s->values = strv_dup(values, f->nlabels);
	if (f->type == METRIC_HISTOGRAM)
		s->buckets = calloc(f->nbounds ? f->nbounds : 1, sizeof(*s->buckets));
	if (!s->values || (f->type == METRIC_HISTOGRAM && !s->buckets)) {
		series_clear(f, s);
		*rc = -ENOMEM;
		return NULL;
	}
	f->n++;
	return s;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE, OP_REMOVE };

static int update(struct metrics *r, const char *name, double v, const char *const *values,
		  enum op op)
{
	pthread_mutex_lock(&r->mu);
	int rc = 0;
	struct family *f = find(r, name);
	if (!f) {
		rc = -ENOENT;
		goto out;
	}
	bool ok = op == OP_REMOVE || (op == OP_ADD && f->type != METRIC_HISTOGRAM) ||
		  (op == OP_SET && f->type == METRIC_GAUGE) ||
		  (op == OP_OBSERVE && f->type == METRIC_HISTOGRAM);
	/* A counter only goes up. */
	if (!ok || (op == OP_ADD && f->type == METRIC_COUNTER && !(v >= 0))) {
		rc = -EINVAL;
		goto out;
	}
	struct series *s = lookup(f, values, op != OP_REMOVE, &rc);
	if (!s)
		goto out;
	switch (op) {
	case OP_ADD: s->v += v; break;
	case OP_SET: s->v = v; break;
	case OP_OBSERVE:
		for (size_t i = 0; i < f->nbounds; i++) {
			if (v <= f->bounds[i]) {
				s->buckets[i]++;
				break;
			}
		}
		s->count++;
		s->sum += v;
		break;
	case OP_REMOVE:
		series_clear(f, s);
		memmove(s, s + 1, (size_t)(f->s + f->n - (s + 1)) * sizeof(*s));
		f->n--;
		break;
	}
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int metrics_add(struct metrics *r, const char *name, double v, const char *const *values)
{
	return update(r, name, v, values, OP_ADD);
}

int metrics_set(struct metrics *r, const char *name, double v, const char *const *values)
{
	return update(r, name, v, values, OP_SET);
}

int metrics_observe(struct metrics *r, const char *name, double v, const char *const *values)
{
	return update(r, name, v, values, OP_OBSERVE);
}

int metrics_remove(struct metrics *r, const char *name, const char *const *values)
{
	return update(r, name, 0, values, OP_REMOVE);
}

/* ---- text format 0.0.4 ------------------------------------------------------ */

/* The shortest %g form that reads back as the same double; +Inf, -Inf, NaN. */
static void fmt_double(char *buf, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(buf, n, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) { /* counts, versions, whole seconds */
		snprintf(buf, n, "%.0f", v);
		return;
	}
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, n, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* HELP text escapes \ and newline; label values also ". */
static void put_escaped(FILE *o, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", o);
		else if (*s == '\n')
			fputs("\\n", o);
		else if (quote && *s == '"')
			fputs("\\\"", o);
		else
			fputc(*s, o);
	}
}

/* NAME{l1="v1",...[,le="B"]} VALUE */
static void put_sample(FILE *o, const struct family *f, const struct series *s,
		       const char *suffix, const char *le, const char *value)
{
	fputs(f->name, o);
	fputs(suffix, o);
	if (f->nlabels || le) {
		fputc('{', o);
		for (size_t i = 0; i < f->nlabels; i++) {
			fprintf(o, "%s%s=\"", i ? "," : "", f->labels[i]);
			put_escaped(o, s->values[i], true);
			fputc('"', o);
		}
		if (le)
			fprintf(o, "%sle=\"%s\"", f->nlabels ? "," : "", le);
		fputc('}', o);
	}
	fprintf(o, " %s\n", value);
}

static void put_family(FILE *o, const struct family *f)
{
	static const char *const tname[] = {"counter", "gauge", "histogram"};
	fprintf(o, "# HELP %s ", f->name);
	put_escaped(o, f->help, false);
	fprintf(o, "\n# TYPE %s %s\n", f->name, tname[f->type]);
	char v[64], le[64];
	for (size_t k = 0; k < f->n; k++) {
		const struct series *s = &f->s[k];
		if (f->type != METRIC_HISTOGRAM) {
			fmt_double(v, sizeof(v), s->v);
			put_sample(o, f, s, "", NULL, v);
			continue;
		}
		uint64_t cum = 0;
		for (size_t i = 0; i < f->nbounds; i++) {
			cum += s->buckets[i];
			fmt_double(le, sizeof(le), f->bounds[i]);
			snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
			put_sample(o, f, s, "_bucket", le, v);
		}
		snprintf(v, sizeof(v), "%llu", (unsigned long long)s->count);
		put_sample(o, f, s, "_bucket", "+Inf", v);
		fmt_double(le, sizeof(le), s->sum);
		put_sample(o, f, s, "_sum", NULL, le);
		put_sample(o, f, s, "_count", NULL, v);
	}
}

int metrics_render(struct metrics *r, char **text, size_t *len)
{
	*text = NULL;
	*len = 0;
	char *buf = NULL;
	size_t n = 0;
	FILE *o = open_memstream(&buf, &n);
	if (!o)
		return -ENOMEM;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++)
		put_family(o, &r->f[i]);
	pthread_mutex_unlock(&r->mu);
	if (fclose(o) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	*len = n;
	return 0;
}
