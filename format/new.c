/*
 * Building a new wrapd header (one aes-xts-plain64 segment, one digest, no
 * keyslots), not yet written.
 */
#include "format/internal.h"

int luks2_hdr_new(const struct luks2_new_params *p, const struct secbuf *vk,
		  struct luks2_hdr **out, struct werr *err)
{
	uint32_t ss = p->sector_size ? p->sector_size : WRAPD_DEFAULT_SECTOR_SIZE;
	uint64_t off = p->data_offset ? p->data_offset : WRAPD_DEFAULT_DATA_OFFSET;
	uint64_t hs = p->hdr_size ? p->hdr_size : WRAPD_DEFAULT_HDR_SIZE;
	const char *cipher = p->cipher ? p->cipher : WRAPD_CIPHER;
	if (ss < 512 || ss > 4096 || (ss & (ss - 1)))
		return werr_set(err, -EINVAL,
				"sector size %u is not supported: use 512, 1024, 2048 or 4096", ss);
	if (!luks2_hdr_size_allowed(hs))
		return werr_set(err, -EINVAL,
				"metadata size %llu is not allowed: use 16 KiB ... 4 MiB, a power of two",
				(unsigned long long)hs);
	if (off % ss || off % 4096)
		return werr_set(err, -EINVAL,
				"data offset %llu is not a multiple of the sector size %u and of 4096",
				(unsigned long long)off, ss);
	uint64_t ks = p->keyslots_size;
	if (!ks) {
		if (off < 2 * hs)
			return werr_set(err, -EINVAL,
					"data offset %llu is smaller than the two metadata copies (%llu bytes)",
					(unsigned long long)off, (unsigned long long)(2 * hs));
		ks = off - 2 * hs;
		if (ks > LUKS2_KEYSLOTS_MAX)
			ks = LUKS2_KEYSLOTS_MAX;
		ks -= ks % 4096;
	}
	if (2 * hs + ks > off)
		return werr_set(err, -EINVAL,
				"data offset %llu leaves no room for the metadata and keyslots area (%llu bytes)",
				(unsigned long long)off, (unsigned long long)(2 * hs + ks));
	if (p->label && strlen(p->label) >= LUKS2_LABEL_LEN)
		return werr_set(err, -EINVAL, "label \"%s\" is longer than 47 bytes", p->label);
	if (p->subsystem && strlen(p->subsystem) >= LUKS2_SUBSYSTEM_LEN)
		return werr_set(err, -EINVAL, "subsystem \"%s\" is longer than 47 bytes", p->subsystem);
	if (p->uuid && !luks2_uuid_valid(p->uuid))
		return werr_set(err, -EINVAL, "uuid \"%s\" is not a canonical lowercase UUID", p->uuid);
	if (!strcmp(cipher, WRAPD_CIPHER) && (!vk || vk->len != WRAPD_VK_BYTES))
		return werr_set(err, -EINVAL, "%s needs a %d-byte volume key", cipher, WRAPD_VK_BYTES);

	char offs[24], kss[24], jss[24];
	snprintf(offs, sizeof(offs), "%llu", (unsigned long long)off);
	snprintf(kss, sizeof(kss), "%llu", (unsigned long long)ks);
	snprintf(jss, sizeof(jss), "%llu", (unsigned long long)(hs - LUKS2_BIN_SIZE));
	json_t *dig = luks2_digest_make(vk, p->iterations ? p->iterations : WRAPD_DIGEST_ITERATIONS, err);
	if (!dig)
		return -EIO;
	json_array_append_new(json_object_get(dig, "segments"), json_string("0"));
	json_t *root = json_pack(
		"{s:{}, s:{}, s:{s:{s:s, s:s, s:s, s:s, s:s, s:I}}, s:{s:o}, s:{s:s, s:s}}",
		"keyslots", "tokens", "segments", "0", "type", "crypt", "offset", offs, "size",
		"dynamic", "iv_tweak", "0", "encryption", cipher, "sector_size", (json_int_t)ss,
		"digests", "0", dig, "config", "json_size", jss, "keyslots_size", kss);
	if (!root)
		return werr_set(err, -ENOMEM, "out of memory");
	struct luks2_hdr *h = calloc(1, sizeof(*h));
	if (!h) {
		json_decref(root);
		return werr_set(err, -ENOMEM, "out of memory");
	}
	h->hdr_size = hs;
	h->seqid = 0;
	snprintf(h->label, sizeof(h->label), "%s", p->label ? p->label : "");
	snprintf(h->subsystem, sizeof(h->subsystem), "%s", p->subsystem ? p->subsystem : "");
	snprintf(h->checksum_alg, sizeof(h->checksum_alg), "sha256");
	if (p->uuid)
		snprintf(h->uuid, sizeof(h->uuid), "%s", p->uuid);
	else if (luks2_uuid_generate(h->uuid) < 0) {
		json_decref(root);
		free(h);
		return werr_set(err, -EIO, "cannot generate a UUID");
	}
	h->json = json_object();
	int rc = luks2_hdr_replace_json(h, root, err);
	if (rc < 0) {
		luks2_hdr_free(h);
		return rc;
	}
	h->used_copy = 0;
	h->copy[0].status = h->copy[1].status = LUKS2_COPY_MISSING;
	snprintf(h->copy[0].why, sizeof(h->copy[0].why), "not written yet");
	snprintf(h->copy[1].why, sizeof(h->copy[1].why), "not written yet");
	*out = h;
	return 0;
}
