/* format: helpers shared by the module's own files (not a public API; the
 * unit tests use luks2_csum_compute to forge damaged images). */
#ifndef WRAPD_FORMAT_INTERNAL_H
#define WRAPD_FORMAT_INTERNAL_H

#include "format/format.h"

/* Binary header field offsets (FACTS-luks2.md). */
#define OFF_MAGIC 0x000
#define OFF_VERSION 0x006
#define OFF_HDR_SIZE 0x008
#define OFF_SEQID 0x010
#define OFF_LABEL 0x018
#define OFF_CSUM_ALG 0x048
#define OFF_SALT 0x068
#define OFF_UUID 0x0A8
#define OFF_SUBSYSTEM 0x0D0
#define OFF_HDR_OFFSET 0x100
#define OFF_CSUM 0x1C0

bool luks2_hdr_size_allowed(uint64_t sz);
/* The checksum of one copy (area = hdr_size bytes; csum field treated as
 * zero). out gets the digest (zero-padded to 64 bytes). -EINVAL for an
 * unsupported algorithm. */
int luks2_csum_compute(const char *alg, const uint8_t *area, size_t hdr_size,
		       uint8_t out[LUKS2_CSUM_LEN]);

/* Strict decimal uint64 string ("0".."18446744073709551615"). */
int luks2_str_u64(const char *s, uint64_t *out);
/* Canonical decimal id (no leading zeros), < limit. */
int luks2_str_id(const char *s, unsigned limit, unsigned *out);

/*
 * Validates a JSON tree for a header of hdr_size and fills the derived facts
 * of `facts` (which must have hdr_size set). On failure writes one line to
 * why and returns -EINVAL.
 */
int luks2_json_validate(json_t *root, uint64_t hdr_size, struct luks2_hdr *facts,
			char *why, size_t whylen);

/* A header string for a message: at most cap-1 bytes, anything outside
 * printable ASCII shown as '?'. */
/* The Vault path fields of a wrapd-vault token, or of the new_token a
 * rekey keeps in its conversion state (JSON object; id and label for
 * messages): vault_mount and vault_key, when they are non-empty strings,
 * must be Vault path parts (vault_valid_path_part). 0, or -EINVAL and why. */
int wrapd_token_check_paths(json_t *tok, unsigned id, const char *label, char *why,
			    size_t whylen);

/* Object member for a numeric id. */
json_t *luks2_obj_get_id(json_t *obj, unsigned id);
int luks2_obj_set_id(json_t *obj, unsigned id, json_t *val); /* steals val */
/* Lowest id in 0..limit-1 not used in obj, or -ENOSPC. */
int luks2_obj_free_id(json_t *obj, unsigned limit);

int luks2_random(void *buf, size_t n);

/* Shared between the module's files (digest.c, new.c, token.c,
 * conversion.c, requirements.c). */
/* A fresh pbkdf2-sha256 digest object of vk with no keyslots or segments. */
json_t *luks2_digest_make(const struct secbuf *vk, uint32_t iterations, struct werr *err);
/* The lowest id of a crypt segment, or -ENOENT. */
int luks2_first_crypt_segment(const struct luks2_hdr *hdr);
/* The first token of `type` (its id) and how many there are; -ENOENT if none. */
int luks2_token_find(json_t *tokens, const char *type, unsigned *id, int *count);
/* The one token of that type in tokens (borrowed), or a new {"type", "keyslots": []}
 * added at the lowest free id; NULL with err set when there are several or no id is free. */
json_t *luks2_token_find_or_add(json_t *tokens, const char *type, struct werr *err);
/* Removes every token of `type` (-ENOENT when there is none). */
int luks2_tokens_remove_type(struct luks2_hdr *hdr, const char *type, struct werr *err);

/* Replaces hdr->json with root (stolen) after validation; refreshes facts. */
int luks2_hdr_replace_json(struct luks2_hdr *hdr, json_t *root, struct werr *err);

#endif
