/* Leveled logging to a caller-owned sink. */
#include "common/common.h"

void wlog(const struct wlog *log, enum wlog_level lvl, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	enum wlog_level max = log ? log->level : WLOG_WARN;
	if (lvl > max)
		return;
	FILE *out = log && log->out ? log->out : stderr;
	const char *prog = log && log->prog ? log->prog : "wrapd";
	va_list ap;
	va_start(ap, fmt);
	flockfile(out);
	fprintf(out, "%s: %s: ", prog, names[lvl]);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	funlockfile(out);
	va_end(ap);
}
