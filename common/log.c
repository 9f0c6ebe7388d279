/* Leveled logging to a caller-owned sink. */
#include "common/common.h"

static void vwlog(const struct wlog *log, enum wlog_level lvl, const char *fmt, va_list ap)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	FILE *out = log && log->out ? log->out : stderr;
	const char *prog = log && log->prog ? log->prog : "wrapd";
	flockfile(out);
	fprintf(out, "%s: %s: ", prog, names[lvl]);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	funlockfile(out);
}

void wlog(const struct wlog *log, enum wlog_level lvl, const char *fmt, ...)
{
	enum wlog_level max = log ? log->level : WLOG_WARN;
	if (lvl > max)
		return;
	va_list ap;
	va_start(ap, fmt);
	vwlog(log, lvl, fmt, ap);
	va_end(ap);
}

void wlog_always(const struct wlog *log, enum wlog_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwlog(log, lvl, fmt, ap);
	va_end(ap);
}
