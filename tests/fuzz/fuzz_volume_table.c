/*
 * libFuzzer target for the host volume table parser (volume/table.c), the
 * crypttab-like /etc/wrapd/volumes that wrapctl open --all and the agent read.
 *
 * Findings, besides crashes and sanitizer reports: an error that is not one
 * line naming "fuzz.tab:LINE:"; an accepted entry whose name is not a valid
 * dm name, whose device is neither an absolute path nor UUID=<lower-case
 * canonical UUID>, whose header is not an absolute path, with a byte that is
 * not printable ASCII or a blank in any field, with both workqueue flags or
 * an unknown flag bit; duplicate names; line numbers not increasing or past
 * the input's; volume_table_find not finding an entry; and a table that does
 * not survive being written back out and parsed again unchanged.
 */
#include "dm/dm.h"
#include "volume/volume.h"

#include <stdlib.h>

#define KNOWN_FLAGS (VOLUME_READ_ONLY | VOLUME_ALLOW_DISCARDS | VOLUME_NO_WORKQUEUE | VOLUME_WORKQUEUE)

static void check_field(const char *s)
{
	if (!s || !*s)
		abort();
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

static void check_entry(const struct volume_entry *e, unsigned prev_line, unsigned lines)
{
	check_field(e->name);
	check_field(e->device);
	if (!dmcrypt_name_valid(e->name) || strlen(e->name) > VOLUME_NAME_MAX)
		abort();
	if (!strncmp(e->device, "UUID=", 5)) {
		const char *u = e->device + 5;
		if (strlen(u) != 36)
			abort();
		for (size_t i = 0; i < 36; i++) {
			bool dash = i == 8 || i == 13 || i == 18 || i == 23;
			if (dash ? u[i] != '-' : !strchr("0123456789abcdef", u[i]))
				abort();
		}
	} else if (e->device[0] != '/') {
		abort();
	}
	if (e->header) {
		check_field(e->header);
		if (e->header[0] != '/' || strchr(e->header, ','))
			abort();
	}
	if ((e->flags & ~KNOWN_FLAGS) ||
	    ((e->flags & VOLUME_WORKQUEUE) && (e->flags & VOLUME_NO_WORKQUEUE)))
		abort();
	if (e->line <= prev_line || e->line > lines)
		abort();
}

/* The table written back in the file's syntax, one volume per line. */
static char *unparse(const struct volume_table *t, size_t *len)
{
	size_t cap = 64;
	for (size_t i = 0; i < t->n; i++)
		cap += strlen(t->v[i].name) + strlen(t->v[i].device) +
		       (t->v[i].header ? strlen(t->v[i].header) : 0) + 128;
	char *buf = malloc(cap);
	if (!buf)
		abort();
	size_t o = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct volume_entry *e = &t->v[i];
		char opts[64 + 4096 + 8];
		int w = snprintf(opts, sizeof(opts), "%s%s%s%s%s%s%s", (e->flags & VOLUME_READ_ONLY) ? "ro," : "",
				 (e->flags & VOLUME_ALLOW_DISCARDS) ? "discard," : "",
				 (e->flags & VOLUME_NO_WORKQUEUE) ? "no-workqueue," : "",
				 (e->flags & VOLUME_WORKQUEUE) ? "workqueue," : "", e->noauto ? "noauto," : "",
				 e->header ? "header=" : "", e->header ? e->header : "");
		if (w < 0 || (size_t)w >= sizeof(opts))
			abort();
		if (w && opts[w - 1] == ',')
			opts[w - 1] = '\0';
		o += (size_t)snprintf(buf + o, cap - o, "%s\t%s %s\n", e->name, e->device,
				      opts[0] ? opts : "defaults");
	}
	buf[o] = '\0';
	*len = o;
	return buf;
}

static void same(const struct volume_table *a, const struct volume_table *b)
{
	if (a->n != b->n)
		abort();
	for (size_t i = 0; i < a->n; i++) {
		const struct volume_entry *x = &a->v[i], *y = &b->v[i];
		if (strcmp(x->name, y->name) || strcmp(x->device, y->device) || x->flags != y->flags ||
		    x->noauto != y->noauto || !x->header != !y->header ||
		    (x->header && strcmp(x->header, y->header)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct volume_table t = {0};
	struct werr err = {0};
	int rc = volume_table_parse((const char *)data, size, "fuzz.tab", &t, &err);
	if (rc < 0) {
		if (rc != -ENOMEM && (strncmp(err.msg, "fuzz.tab:", 9) || strchr(err.msg, '\n')))
			abort();
		if (t.n || t.v)
			abort(); /* a refusal hands back nothing */
		return 0;
	}
	unsigned lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	unsigned prev = 0;
	for (size_t i = 0; i < t.n; i++) {
		check_entry(&t.v[i], prev, lines);
		prev = t.v[i].line;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(t.v[i].name, t.v[j].name))
				abort();
		if (volume_table_find(&t, t.v[i].name) != &t.v[i])
			abort();
	}
	size_t len = 0;
	char *text = unparse(&t, &len);
	struct volume_table t2 = {0};
	struct werr e2 = {0};
	if (volume_table_parse(text, len, "fuzz.tab", &t2, &e2) < 0)
		abort(); /* what was accepted, written back, must be accepted */
	same(&t, &t2);
	free(text);
	volume_table_free(&t2);
	volume_table_free(&t);
	return 0;
}
