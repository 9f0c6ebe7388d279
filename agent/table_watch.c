/*
 * The table watch: inotify on the DIRECTORY of the volume table (so that an
 * editor's write-to-temp-and-rename is seen as well as an in-place write),
 * filtered to the table's own name; and on the directory of the Vault token
 * file, when there is one, so that a new token is used at once.
 */
#include "agent/agent.h"

#include <libgen.h>
#include <sys/inotify.h>

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | \
		    IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

static int split(const char *path, char **dir, char **base)
{
	_cleanup_free_ char *d1 = strdup(path), *d2 = strdup(path);
	if (!d1 || !d2)
		return -ENOMEM;
	*dir = strdup(dirname(d1));
	*base = strdup(basename(d2));
	if (!*dir || !*base) {
		free(*dir);
		free(*base);
		*dir = *base = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int add_watch(struct agent *a, const char *path, char **dir, char **base, int *wd,
		     struct werr *err)
{
	int r = split(path, dir, base);
	if (r < 0)
		return werr_set(err, r, "out of memory");
	*wd = inotify_add_watch(a->inofd, *dir, WATCH_MASK | IN_ONLYDIR);
	if (*wd < 0)
		return werr_set(err, -errno, "%s: cannot watch this directory for changes of %s: %s",
				*dir, *base, strerror(errno));
	return 0;
}

int table_watch_init(struct agent *a, struct werr *err)
{
	a->table_wd = a->token_wd = -1;
	if (a->inofd < 0) {
		a->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (a->inofd < 0)
			return werr_set(err, -errno, "inotify: %s", strerror(errno));
	}
	const char *table = a->cfg.volume_table;
	int r = add_watch(a, table, &a->table_dir, &a->table_base, &a->table_wd, err);
	if (r == -ENOENT && a->cfg.kubernetes) {
		/* Kubernetes mode: the table is optional, and in a pod its
		 * folder may not exist at all (only the ConfigMap is mounted). */
		alog(a->log, WLOG_INFO, NULL, table, "watch",
		     "no folder for the volume table; Kubernetes mode goes on without one");
		werr_clear(err);
		r = 0;
	}
	if (r < 0)
		return r;
	if (a->token_file) {
		struct werr e;
		werr_clear(&e);
		r = add_watch(a, a->token_file, &a->token_dir, &a->token_base, &a->token_wd, &e);
		if (r < 0)
			alog(a->log, WLOG_WARN, NULL, a->token_file, "watch",
			     "%s; a new token is read only at the next Vault call", werr_str(&e, r));
	}
	return 0;
}

void table_watch_fini(struct agent *a)
{
	if (a->inofd >= 0)
		close(a->inofd);
	a->inofd = -1;
	free(a->table_dir);
	free(a->table_base);
	free(a->token_dir);
	free(a->token_base);
	a->table_dir = a->table_base = a->token_dir = a->token_base = NULL;
}

void table_watch_event(struct agent *a)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool table = false, token = false;
	for (;;) {
		ssize_t n = read(a->inofd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				if (ev->wd == a->table_wd)
					alog(a->log, WLOG_WARN, NULL, a->table_dir, "watch",
					     "the table's directory went away; changes are seen again after SIGHUP");
				continue;
			}
			if (ev->mask & IN_Q_OVERFLOW) {
				table = token = true;
				continue;
			}
			if (!ev->len)
				continue;
			if (ev->wd == a->table_wd && !strcmp(ev->name, a->table_base))
				table = true;
			if (ev->wd == a->token_wd && a->token_base && !strcmp(ev->name, a->token_base))
				token = true;
		}
	}
	if (table) {
		const char *path = a->cfg.volume_table;
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			/* Mid-rename, or removed: wait for the next event. */
			alog(a->log, WLOG_WARN, NULL, path, "table",
			     "the table is gone; keeping the current volumes as they are");
		} else if (agent_table_reload(a) == 0) {
			agent_kick(a);
		}
	}
	if (token)
		agent_vault_changed(a);
}
