/*
 * libFuzzer target for the LUKS2 header parser (format module).
 *
 * Each input is the start of a device. It is parsed as-is, then again with
 * the checksums of both copies recomputed so that mutations reach the JSON
 * area and the validator instead of stopping at the checksum. A header that
 * parses must survive the module's own use: serialise -> parse again (the
 * round trip must succeed), token/segment/conversion accessors and the
 * activation checks. Any crash, sanitizer report or failed round trip is a
 * finding.
 */
#include "format/internal.h"

#include <stdlib.h>

static void exercise(const struct luks2_hdr *h)
{
	struct werr e = {0};
	struct wrapd_token t;
	if (wrapd_token_get(h, &t, NULL, &e) == 0)
		wrapd_token_free(&t);
	struct luks2_segment *segs = NULL;
	size_t n = 0;
	if (luks2_segments_get(h, &segs, &n, &e) == 0)
		luks2_segments_free(segs, n);
	json_t *st = NULL;
	if (luks2_conversion_get(h, &st, &e) == 0)
		json_decref(st);
	(void)luks2_check_activatable(h, "fuzz", &e);
	(void)luks2_check_writable(h, "fuzz", &e);
	(void)luks2_digest_for_segment(h, 0);
	(void)luks2_requirement_has(h, WRAPD_REQ_REENCRYPT);

	/* Round trip: what we parsed, we must be able to write and read back. */
	size_t len = 2 * (size_t)h->hdr_size;
	uint8_t *buf = malloc(len);
	if (!buf)
		return;
	int rc = luks2_hdr_serialize(h, buf, len, &e);
	if (rc == 0) {
		struct luks2_hdr *back = NULL;
		rc = luks2_hdr_parse(buf, len, "roundtrip", &back, NULL, &e);
		if (rc != 0 || !json_equal(back->json, h->json) || strcmp(back->uuid, h->uuid)) {
			fprintf(stderr, "round trip failed: %s\n", e.msg);
			abort();
		}
		luks2_hdr_free(back);
	} else if (rc != -ENOSPC) {
		/* Re-serialised compact JSON may not fit only if the input's was
		 * smaller, which cannot be; any other failure is a bug. */
		fprintf(stderr, "serialize failed: %s\n", e.msg);
		abort();
	}
	free(buf);
}

static void parse_one(const uint8_t *data, size_t size)
{
	struct luks2_hdr *h = NULL, *d = NULL;
	struct werr e = {0};
	if (luks2_hdr_parse(data, size, "fuzz", &h, &d, &e) == 0)
		exercise(h);
	luks2_hdr_free(h);
	luks2_hdr_free(d);
}

static void fix_csum(uint8_t *p, size_t avail)
{
	if (avail < LUKS2_BIN_SIZE)
		return;
	uint64_t hs = be64_load(p + OFF_HDR_SIZE);
	if (!luks2_hdr_size_allowed(hs) || hs > avail)
		return;
	char alg[LUKS2_CSUM_ALG_LEN + 1];
	memcpy(alg, p + OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN);
	alg[LUKS2_CSUM_ALG_LEN] = '\0';
	(void)luks2_csum_compute(alg, p, (size_t)hs, p + OFF_CSUM);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_one(data, size);
	if (size < LUKS2_BIN_SIZE)
		return 0;
	uint8_t *c = malloc(size);
	if (!c)
		return 0;
	memcpy(c, data, size);
	fix_csum(c, size);
	uint64_t hs = be64_load(c + OFF_HDR_SIZE);
	if (luks2_hdr_size_allowed(hs) && hs < size)
		fix_csum(c + hs, size - (size_t)hs);
	parse_one(c, size);
	free(c);
	return 0;
}
