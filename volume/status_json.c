/*
 * The status document of the kernel's view (`wrapctl status --json` when no
 * agent answers): one object per wrapd mapping, from volume_status_list().
 * Field names are a contract for scripts: add, never rename.
 */
#include "volume/internal.h"

#include <jansson.h>

json_t *volume_status_entry_json(const struct volume_status *s)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:b, s:b, s:i, s:s}",
			      "name", s->name, "dm_uuid", s->dm_uuid, "uuid", s->luks_uuid, "backing",
			      s->backing, "backing_file", s->backing_file, "cipher", s->cipher, "flags",
			      s->flags, "size", (json_int_t)s->size_bytes, "offset_sectors",
			      (json_int_t)s->offset_sectors, "sector_size", (int)s->sector_size,
			      "read_only", s->read_only, "suspended", s->suspended, "open_count",
			      s->open_count, "holders", s->holders);
	if (!o)
		return NULL;
	json_object_set_new(o, "key_version", s->key_version >= 0 ? json_integer(s->key_version) : json_null());
	if (s->header_note[0])
		json_object_set_new(o, "header_note", json_string(s->header_note));
	return o;
}

json_t *volume_status_json(const struct volume_status *st, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *o = volume_status_entry_json(&st[i]);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}
