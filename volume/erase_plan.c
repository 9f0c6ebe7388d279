/*
 * erase: where plaintext may lie on a half-converted volume (issue 10 item 1).
 *
 * A crypto-erase destroys keys; that makes the encrypted part unreadable, but
 * an interrupted encrypt or decrypt leaves plaintext behind, and a discard
 * does not reliably remove it (an SSD's discard need not zero, and nothing is
 * discarded below the data offset). This file reads the engine's conversion
 * state (engine/plan.c documents the layouts) and lists every region that may
 * hold plaintext, or the conversion journal, so erase can overwrite them. The
 * list is recorded in the header (an "erase" state) before any overwrite, so
 * an interrupted erase is finished by running it again.
 *
 * The bounds are conservative: a missing or out-of-range value in the state
 * widens the region to the whole device.
 *
 *   D = data device size, O = data offset, hs = one header copy, E = end of
 *   the data segment, d = the state's "done":
 *   encrypt, shift:   [2hs, O+d) (not yet moved, and the old copies of what
 *                     moved, below the destination) + park [D-1MiB, D)
 *   decrypt, shift:   [2hs, O+d) (moved down in clear, and the hotzone in
 *                     flight) + park + a plaintext bubble of an old version
 *   encrypt, inplace: [O+d, E)
 *   decrypt, inplace: [O, O+max(d, hz_end))
 *   rekey:            nothing in clear; the journal only
 *   every conversion: the keyslots area past the two header copies (the
 *                     journal; below the data offset), or the header file's.
 */
#include "volume/internal.h"

#define MiB (1024ull * 1024)
#define PARK_REGION MiB           /* engine: ENGINE_PARK_SIZE */
#define BUBBLE_LEN (256ull * 1024) /* engine: PARK_LEN */

static uint64_t st_num(json_t *st, const char *k)
{
	json_t *v = json_object_get(st, k);
	uint64_t x = 0;
	if (json_is_string(v) && parse_u64(json_string_value(v), &x) == 0)
		return x;
	return UINT64_MAX;
}

static const char *st_text(json_t *st, const char *k)
{
	const char *s = json_string_value(json_object_get(st, k));
	return s ? s : "";
}

void erase_plan_add(struct erase_plan *p, unsigned on, uint64_t off, uint64_t end, bool keys,
		    const char *what)
{
	/* Never the header copies: they are rewritten, not overwritten. */
	uint64_t lim = on == ERASE_ON_HEADER ? p->g.hdr_file_size : p->g.dev_size;
	uint64_t first = on == ERASE_ON_HEADER || !p->g.detached ? 2 * p->g.hdr_size : 0;
	if (end > lim)
		end = lim;
	if (off < first)
		off = first;
	if (off >= end || p->n >= ARRAY_SIZE(p->r))
		return;
	struct erase_region *r = &p->r[p->n++];
	r->on = on;
	r->off = off;
	r->len = end - off;
	r->keys = keys;
	/* what may come from a header (an erase state): printable ASCII only. */
	size_t i = 0;
	for (; what[i] && i + 1 < sizeof(r->what); i++)
		r->what[i] = what[i] >= 0x20 && what[i] < 0x7f ? what[i] : '?';
	r->what[i] = '\0';
}

/* Sorts by (file, offset) and merges overlapping or touching regions. */
void erase_plan_merge(struct erase_plan *p)
{
	for (size_t i = 1; i < p->n; i++)
		for (size_t j = i; j > 0; j--) {
			struct erase_region *a = &p->r[j - 1], *b = &p->r[j];
			if (a->on < b->on || (a->on == b->on && a->off <= b->off))
				break;
			struct erase_region t = *a;
			*a = *b;
			*b = t;
		}
	size_t o = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct erase_region *last = o ? &p->r[o - 1] : NULL;
		struct erase_region *r = &p->r[i];
		if (last && last->on == r->on && last->keys == r->keys &&
		    r->off <= last->off + last->len) {
			uint64_t end = r->off + r->len;
			if (end > last->off + last->len)
				last->len = end - last->off;
			if (strlen(last->what) + strlen(r->what) + 3 < sizeof(last->what) &&
			    !strstr(last->what, r->what)) {
				strcat(last->what, ", ");
				strcat(last->what, r->what);
			}
			continue;
		}
		p->r[o++] = *r;
	}
	p->n = o;
}

uint64_t erase_plan_bytes(const struct erase_plan *p)
{
	uint64_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->r[i].len;
	return n;
}

/* The park region of a shift conversion holds a copy of the head and the
 * header image, wrapped key included: it goes with the keys. */
static void park(struct erase_plan *p)
{
	uint64_t D = p->g.dev_size;
	erase_plan_add(p, ERASE_ON_DATA, D > PARK_REGION ? D - PARK_REGION : 0, D, true,
		       "park region (head copy, header image with the wrapped key)");
}

/* The regions of an interrupted encrypt/rekey/decrypt. */
static void plan_conversion(struct erase_plan *p, json_t *st)
{
	const struct erase_geom *g = &p->g;
	const char *op = st_text(st, "op"), *layout = st_text(st, "layout");
	bool shift = !strcmp(layout, "shift"), inplace = !strcmp(layout, "inplace");
	uint64_t d = st_num(st, "done"), hz_end = st_num(st, "hz_end");
	uint64_t O = g->data_offset, hs2 = 2 * g->hdr_size, D = g->dev_size;
	uint64_t E = g->seg_end;
	uint64_t lo = g->detached ? 0 : hs2; /* the data device's first byte wrapd may overwrite */
	snprintf(p->conversion, sizeof(p->conversion), "%s (%s)", op[0] ? op : "unknown",
		 layout[0] ? layout : "unknown layout");

	/* The journal (and, shift, what lies below the data offset). */
	if (g->detached)
		erase_plan_add(p, ERASE_ON_HEADER, hs2, g->hdr_file_size, false,
			       "header file past its copies (journal)");
	else
		erase_plan_add(p, ERASE_ON_DATA, hs2, O, false, "below the data offset (journal, moved data)");

	if (!strcmp(op, "rekey") && (inplace || shift))
		return; /* old key -> new key: nothing in clear */
	bool enc = !strcmp(op, "encrypt"), dec = !strcmp(op, "decrypt");
	if (shift && !g->detached && (enc || dec)) {
		if (d == UINT64_MAX || d > D)
			d = D;
		erase_plan_add(p, ERASE_ON_DATA, lo, O + d > D ? D : O + d, false,
			       enc ? "not yet encrypted" : "decrypted, and the hotzone in flight");
		park(p);
		uint64_t b = st_num(st, "bubble");
		if (dec && b != UINT64_MAX && strcmp(st_text(st, "bubble_form"), "cipher"))
			erase_plan_add(p, ERASE_ON_DATA, b, b + BUBBLE_LEN, false, "head copy in clear");
		return;
	}
	if (inplace && enc) {
		if (d == UINT64_MAX || d > E - O)
			d = 0;
		erase_plan_add(p, ERASE_ON_DATA, O + d, E, false, "not yet encrypted");
		return;
	}
	if (inplace && dec) {
		uint64_t top = d;
		if (hz_end != UINT64_MAX && (top == UINT64_MAX || hz_end > top))
			top = hz_end;
		if (top == UINT64_MAX || top > E - O)
			top = E - O;
		erase_plan_add(p, ERASE_ON_DATA, O, O + top, false, "decrypted, and the hotzone in flight");
		return;
	}
	/* A state this version does not know: everything may be plaintext. */
	if (!g->detached)
		park(p);
	erase_plan_add(p, ERASE_ON_DATA, lo, D, false, "the whole device (unknown conversion state)");
}

/* An erase that stopped after destroying the keys: its recorded regions. */
static int plan_erase_state(struct erase_plan *p, json_t *st)
{
	json_t *a = json_object_get(st, "regions");
	if (!json_is_array(a))
		return -EUCLEAN;
	snprintf(p->conversion, sizeof(p->conversion), "erase (interrupted, finishing it)");
	size_t i;
	json_t *r;
	json_array_foreach(a, i, r)
	{
		const char *on = st_text(r, "on");
		uint64_t off = st_num(r, "offset"), len = st_num(r, "length");
		bool hdr = !strcmp(on, "header");
		if ((!hdr && strcmp(on, "data")) || off == UINT64_MAX || len == UINT64_MAX ||
		    (hdr && !p->g.detached))
			return -EUCLEAN;
		erase_plan_add(p, hdr ? ERASE_ON_HEADER : ERASE_ON_DATA, off,
			       len > UINT64_MAX - off ? UINT64_MAX : off + len,
			       json_is_true(json_object_get(r, "keys")), st_text(r, "what"));
	}
	return 0;
}

int erase_plan_from_state(json_t *st, struct erase_plan *p)
{
	int rc = 0;
	if (!strcmp(st_text(st, "op"), "erase"))
		rc = plan_erase_state(p, st);
	else
		plan_conversion(p, st);
	if (rc < 0) {
		/* A damaged erase state: overwrite everything but the header copies. */
		p->n = 0;
		if (!p->g.detached)
			park(p);
		erase_plan_add(p, ERASE_ON_DATA, p->g.detached ? 0 : 2 * p->g.hdr_size, p->g.dev_size,
			       false, "the whole device (damaged erase state)");
		if (p->g.detached)
			erase_plan_add(p, ERASE_ON_HEADER, 2 * p->g.hdr_size, p->g.hdr_file_size,
				       false, "header file past its copies");
	}
	erase_plan_merge(p);
	return 0;
}

json_t *erase_plan_state(const struct erase_plan *p)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < p->n; i++) {
		char off[24], len[24];
		snprintf(off, sizeof(off), "%llu", (unsigned long long)p->r[i].off);
		snprintf(len, sizeof(len), "%llu", (unsigned long long)p->r[i].len);
		if (json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:s}", "on",
						       p->r[i].on == ERASE_ON_HEADER ? "header" : "data",
						       "offset", off, "length", len, "keys", p->r[i].keys,
						       "what", p->r[i].what)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a ? json_pack("{s:i, s:s, s:o}", "version", 1, "op", "erase", "regions", a) : NULL;
}
