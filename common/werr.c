/* werr: one human-readable error line travelling with a negative errno. */
#include "common/common.h"

int werr_set(struct werr *err, int rc, const char *fmt, ...)
{
	if (!err)
		return rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->rc = rc;
	return rc;
}

int werr_prefix(struct werr *err, int rc, const char *fmt, ...)
{
	if (!err)
		return rc;
	char prefix[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	char old[WERR_MSG_MAX];
	if (err->msg[0])
		memcpy(old, err->msg, sizeof(old));
	else
		snprintf(old, sizeof(old), "%s", strerror(rc < 0 ? -rc : rc));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	if (!err->rc)
		err->rc = rc;
	return err->rc;
}

void werr_clear(struct werr *err)
{
	if (err) {
		err->rc = 0;
		err->msg[0] = '\0';
	}
}

const char *werr_str(const struct werr *err, int rc)
{
	if (err && err->msg[0])
		return err->msg;
	return strerror(rc < 0 ? -rc : rc);
}

int ct_memcmp(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}
