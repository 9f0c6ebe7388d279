/*
 * Generic segments for the conversion engine (crypt or linear, iv_tweak,
 * extra members), read and replaced as a whole and re-validated.
 */
#include "format/internal.h"

void luks2_segments_free(struct luks2_segment *segs, size_t n)
{
	if (!segs)
		return;
	for (size_t i = 0; i < n; i++)
		json_decref(segs[i].extra);
	free(segs);
}

static const char *const seg_known[] = {"type", "offset", "size", "iv_tweak", "encryption",
					"sector_size"};

int luks2_segments_get(const struct luks2_hdr *hdr, struct luks2_segment **out, size_t *n,
		       struct werr *err)
{
	json_t *segs = json_object_get(hdr->json, "segments");
	size_t cnt = json_object_size(segs);
	struct luks2_segment *a = calloc(cnt ? cnt : 1, sizeof(*a));
	if (!a)
		return werr_set(err, -ENOMEM, "out of memory");
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(segs, k, v)
	{
		struct luks2_segment *s = &a[i++];
		unsigned id = 0;
		(void)luks2_str_id(k, 1000, &id);
		s->id = id;
		snprintf(s->type, sizeof(s->type), "%s", json_string_value(json_object_get(v, "type")));
		(void)luks2_str_u64(json_string_value(json_object_get(v, "offset")), &s->offset);
		const char *sz = json_string_value(json_object_get(v, "size"));
		s->dynamic = sz && !strcmp(sz, "dynamic");
		if (!s->dynamic)
			(void)luks2_str_u64(sz, &s->size);
		json_t *iv = json_object_get(v, "iv_tweak");
		if (json_is_string(iv))
			(void)luks2_str_u64(json_string_value(iv), &s->iv_tweak);
		json_t *enc = json_object_get(v, "encryption");
		if (json_is_string(enc))
			snprintf(s->encryption, sizeof(s->encryption), "%s", json_string_value(enc));
		s->sector_size = (uint32_t)json_integer_value(json_object_get(v, "sector_size"));
		s->digest = luks2_digest_for_segment(hdr, id);
		if (s->digest < 0)
			s->digest = -1;
		json_t *extra = json_deep_copy(v);
		for (size_t j = 0; extra && j < ARRAY_SIZE(seg_known); j++)
			json_object_del(extra, seg_known[j]);
		if (extra && !json_object_size(extra)) {
			json_decref(extra);
			extra = NULL;
		}
		s->extra = extra;
	}
	/* order by id */
	for (size_t x = 1; x < cnt; x++)
		for (size_t y = x; y > 0 && a[y - 1].id > a[y].id; y--) {
			struct luks2_segment t = a[y];
			a[y] = a[y - 1];
			a[y - 1] = t;
		}
	*out = a;
	*n = cnt;
	return 0;
}

int luks2_segments_set(struct luks2_hdr *hdr, const struct luks2_segment *segs, size_t n,
		       struct werr *err)
{
	if (!n)
		return werr_set(err, -EINVAL, "a header needs at least one segment");
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	json_t *digests = json_object_get(root, "digests");
	const char *dk;
	json_t *dv;
	json_object_foreach(digests, dk, dv) json_object_set_new(dv, "segments", json_array());
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++) {
		const struct luks2_segment *s = &segs[i];
		char offs[24], sizes[24], ivs[24];
		snprintf(offs, sizeof(offs), "%llu", (unsigned long long)s->offset);
		snprintf(sizes, sizeof(sizes), "%llu", (unsigned long long)s->size);
		snprintf(ivs, sizeof(ivs), "%llu", (unsigned long long)s->iv_tweak);
		json_t *j = json_pack("{s:s, s:s, s:s}", "type", s->type, "offset", offs, "size",
				      s->dynamic ? "dynamic" : sizes);
		if (j && !strcmp(s->type, "crypt")) {
			json_object_set_new(j, "iv_tweak", json_string(ivs));
			json_object_set_new(j, "encryption", json_string(s->encryption));
			json_object_set_new(j, "sector_size", json_integer(s->sector_size));
		}
		if (j && s->extra && json_is_object(s->extra))
			json_object_update_missing(j, s->extra);
		if (!j) {
			json_decref(o);
			json_decref(root);
			return werr_set(err, -ENOMEM, "out of memory");
		}
		luks2_obj_set_id(o, (unsigned)i, j);
		if (s->digest >= 0) {
			json_t *d = luks2_obj_get_id(digests, (unsigned)s->digest);
			if (!d) {
				json_decref(o);
				json_decref(root);
				return werr_set(err, -ENOENT, "segment %zu: digest %d does not exist", i,
						s->digest);
			}
			char k[24];
			snprintf(k, sizeof(k), "%zu", i);
			json_array_append_new(json_object_get(d, "segments"), json_string(k));
		}
	}
	json_object_set_new(root, "segments", o);
	return luks2_hdr_replace_json(hdr, root, err);
}

int luks2_keyslots_size_set(struct luks2_hdr *hdr, uint64_t keyslots_size, struct werr *err)
{
	json_t *root = json_deep_copy(hdr->json);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	char s[24];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)keyslots_size);
	json_object_set_new(json_object_get(root, "config"), "keyslots_size", json_string(s));
	return luks2_hdr_replace_json(hdr, root, err);
}
