/*
 * The status document of the kernel's view (`wrapctl status --json` when no
 * agent answers): one object per wrapd mapping, from volume_status_list().
 * Field names are a contract for scripts: add, never rename.
 *
 * "rekey" is null, or (an online rekey in progress)
 *   {"in_progress": true, "online" (the table is split), "done", "total"
 *    (bytes), "ratio", "source": "header" | "table", "table_done" (bytes the
 *    live table serves under the new key), "zone": {"start","length"} | null,
 *    "key_ref_old", "key_ref_new"}
 * done/total come from the header's checkpoint when it can be read: it is
 * durable, and a resume (or an open after a crash) continues from it; the
 * live table may be one zone ahead and is gone after a reboot. Only without
 * a readable header (detached) does the table say it ("source": "table").
 */
#include "volume/internal.h"

#include <jansson.h>

bool volume_status_rekey(const struct volume_status *s, uint64_t *done, uint64_t *total,
			 const char **source)
{
	if (!strcmp(s->conversion, "rekey") && s->conv_total) {
		*done = s->conv_done;
		*total = s->conv_total;
		*source = "header";
		return true;
	}
	if (s->split) {
		/* No readable header (detached?): the live table says how far. */
		*done = s->table_new_bytes;
		*total = s->size_bytes;
		*source = "table";
		return true;
	}
	return false;
}

json_t *volume_status_rekey_json(const struct volume_status *s)
{
	uint64_t done, total;
	const char *source;
	if (!volume_status_rekey(s, &done, &total, &source))
		return json_null();
	json_t *r = json_object();
	json_object_set_new(r, "in_progress", json_true());
	json_object_set_new(r, "online", json_boolean(s->split));
	json_object_set_new(r, "done", json_integer((json_int_t)done));
	json_object_set_new(r, "total", json_integer((json_int_t)total));
	json_object_set_new(r, "ratio", json_real(total ? (double)done / (double)total : 0));
	json_object_set_new(r, "source", json_string(source));
	json_object_set_new(r, "table_done", json_integer((json_int_t)s->table_new_bytes));
	json_t *z = json_null();
	if (s->zone_bytes)
		z = json_pack("{s:I, s:I}", "start", (json_int_t)s->zone_start, "length",
			      (json_int_t)s->zone_bytes);
	json_object_set_new(r, "zone", z);
	json_object_set_new(r, "key_ref_old", s->split && strcmp(s->key_ref, s->key_ref_new) ?
					      json_string(s->key_ref) : json_null());
	json_object_set_new(r, "key_ref_new", s->key_ref_new[0] ? json_string(s->key_ref_new) :
								   json_null());
	return r;
}

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
	json_object_set_new(o, "targets", json_integer(s->targets));
	json_object_set_new(o, "rekey", volume_status_rekey_json(s));
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
