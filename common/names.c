/*
 * Names that end up in a Vault API path. They come from the config file and
 * from (hostile) headers, so both use this one check. And the one way a
 * hostile string is made fit for a terminal or a JSON document.
 */
#include "common/common.h"

/* ASCII only, whatever the locale. */
static bool name_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '-' || c == '_' || c == '.';
}

bool vault_valid_path_part(const char *s, bool allow_slash)
{
	if (!*s || strlen(s) > 128 || *s == '/' || s[strlen(s) - 1] == '/')
		return false;
	for (const char *p = s; *p; p++) {
		if (name_char(*p))
			continue;
		if (*p == '/' && allow_slash && p[1] != '/')
			continue;
		return false;
	}
	/* No "." or ".." segments. */
	for (const char *p = s; *p;) {
		size_t seg = strcspn(p, "/");
		if ((seg == 1 && p[0] == '.') || (seg == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += seg;
		if (*p)
			p++;
	}
	return true;
}

void str_printable(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (; src && *src && n + 1 < cap; src++)
		dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	if (cap)
		dst[n] = '\0';
}
