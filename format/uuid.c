/*
 * The volume UUID: generating a v4 UUID, and the one UUID check of wrapd
 * (luks2_uuid_canon) that every module uses.
 */
#include "format/internal.h"

#include <ctype.h>

int luks2_uuid_generate(char out[37])
{
	uint8_t r[16];
	if (luks2_random(r, sizeof(r)) < 0)
		return -EIO;
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
		 r[15]);
	return 0;
}

int luks2_uuid_canon(const char *s, char out[37])
{
	char c[37];
	if (!s || strlen(s) != 36)
		return -EINVAL;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
		} else if (!isxdigit((unsigned char)s[i])) {
			return -EINVAL;
		}
		c[i] = (char)tolower((unsigned char)s[i]);
	}
	c[36] = '\0';
	if (out)
		memcpy(out, c, sizeof(c));
	return 0;
}

bool luks2_uuid_valid(const char *s)
{
	char c[37];
	return luks2_uuid_canon(s, c) == 0 && !strcmp(c, s);
}
