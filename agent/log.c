/*
 * The agent's log lines: one event per line on stderr, as text
 *   wrapd: info: VOLUME (DEVICE): EVENT: message
 * or as JSON
 *   {"time":"...","level":"info","event":"opened","volume":"...","device":"...","msg":"..."}.
 * The library's own wlog lines ("wrapd: warning: ...") go through a stdio
 * cookie that, in JSON mode, turns each of them into a JSON line as well, so
 * stderr never mixes the two formats. Never key material.
 */
#include "agent/agent.h"

#include <jansson.h>
#include <time.h>

static void now_iso(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t w = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + w, n - w, ".%03ldZ", ts.tv_nsec / 1000000);
}

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static void emit_json(struct alog *l, const char *level, const char *volume, const char *device,
		      const char *event, const char *msg)
{
	char t[40];
	now_iso(t, sizeof(t));
	json_t *o = json_object();
	json_object_set_new(o, "time", json_string(t));
	json_object_set_new(o, "level", json_string(level));
	if (event)
		json_object_set_new(o, "event", json_string(event));
	if (volume)
		json_object_set_new(o, "volume", json_string(volume));
	if (device)
		json_object_set_new(o, "device", json_string(device));
	/* json_string refuses invalid UTF-8: fall back to a lossy copy. */
	json_t *m = json_string(msg);
	if (!m) {
		char *c = strdup(msg);
		for (char *p = c; p && *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		m = json_string(c ? c : "");
		free(c);
	}
	json_object_set_new(o, "msg", m);
	char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!txt)
		return;
	pthread_mutex_lock(&l->mu);
	fprintf(l->out, "%s\n", txt);
	fflush(l->out);
	pthread_mutex_unlock(&l->mu);
	free(txt);
}

void alog(struct alog *l, enum wlog_level lvl, const char *volume, const char *device,
	  const char *event, const char *fmt, ...)
{
	if (lvl > l->level)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->json) {
		emit_json(l, level_names[lvl], volume, device, event, msg);
		return;
	}
	pthread_mutex_lock(&l->mu);
	fprintf(l->out, "wrapd: %s: ", level_names[lvl]);
	if (volume && device)
		fprintf(l->out, "%s (%s): ", volume, device);
	else if (volume)
		fprintf(l->out, "%s: ", volume);
	if (event)
		fprintf(l->out, "%s: ", event);
	fprintf(l->out, "%s\n", msg);
	fflush(l->out);
	pthread_mutex_unlock(&l->mu);
}

/* ---- the library's sink in JSON mode --------------------------------------- */

struct libsink {
	struct alog *l;
	char buf[4096];
	size_t len;
};

static void libsink_line(struct libsink *s, char *line)
{
	/* "wrapd: LEVEL: message" */
	const char *level = "info";
	char *p = strstr(line, ": ");
	if (p) {
		char *q = strstr(p + 2, ": ");
		if (q) {
			*q = '\0';
			for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
				if (!strcmp(p + 2, level_names[i]))
					level = level_names[i];
			line = q + 2;
		}
	}
	emit_json(s->l, level, NULL, NULL, NULL, line);
}

static ssize_t libsink_write(void *cookie, const char *data, size_t n)
{
	struct libsink *s = cookie;
	for (size_t i = 0; i < n; i++) {
		if (data[i] == '\n' || s->len == sizeof(s->buf) - 1) {
			s->buf[s->len] = '\0';
			libsink_line(s, s->buf);
			s->len = 0;
			if (data[i] == '\n')
				continue;
		}
		s->buf[s->len++] = data[i];
	}
	return (ssize_t)n;
}

static int libsink_close(void *cookie)
{
	free(cookie);
	return 0;
}

int alog_init(struct alog *l, bool json, enum wlog_level level)
{
	memset(l, 0, sizeof(*l));
	l->json = json;
	l->level = level;
	l->out = stderr;
	pthread_mutex_init(&l->mu, NULL);
	/* The library logs warnings and errors; its info lines would repeat ours. */
	l->wlog.level = level > WLOG_INFO ? level : WLOG_WARN;
	l->wlog.prog = "wrapd";
	l->wlog.out = stderr;
	if (json) {
		struct libsink *s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->l = l;
		cookie_io_functions_t io = {.write = libsink_write, .close = libsink_close};
		l->lib = fopencookie(s, "w", io);
		if (!l->lib) {
			free(s);
			return -ENOMEM;
		}
		setvbuf(l->lib, NULL, _IOLBF, 0);
		l->wlog.out = l->lib;
	}
	return 0;
}

void alog_fini(struct alog *l)
{
	if (l->lib)
		fclose(l->lib);
	l->lib = NULL;
	pthread_mutex_destroy(&l->mu);
}
