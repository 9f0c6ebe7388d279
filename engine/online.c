/*
 * engine: online rekey. The volume stays mapped; the driver (struct
 * conv_online, volume/online.c on dm/) moves a held zone through the live
 * table, and each zone goes through the in-place protocol of execute.c
 * unchanged: hash the old content, journal + header commit naming the zone,
 * write, fsync. The records are the offline ones; what is new is the order
 * of the kernel steps around them:
 *
 *   hold(a,b)      the zone's I/O queues on the suspended zone device, whose
 *                  table (old key) matches the untouched data
 *   run_zone       journal + commit {done=a, zone [a,b)}, writes, fsync
 *   release(true)  the zone device's table becomes the new key, then resume
 *
 * A zone is written only while held and after the commit naming it, so
 * whenever it is not held its data matches the key the table gives it. A
 * released zone is recorded as done by the next zone's commit; a crash
 * before that redoes it from its journal, which finds every sector new.
 *
 * If this process dies while a zone is held, the guardian (a child forked
 * after the keys are loaded, in its own session) finds the held zone through
 * the driver, finishes it from the journal when the header names it (else
 * it was never written) and releases it; `resume` and `open` do the same
 * when the guardian is gone too. Power loss leaves only the header: open
 * finishes the journaled zone before it maps the split table
 * (conv_rekey_prepare_open).
 */
#include "engine/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the zone from its journal ---------------------------------------------------- */

/* The state names a journaled zone: [*a,*e). */
static bool state_zone(struct conv *c, uint64_t *a, uint64_t *e)
{
	*a = st_u64(c->state, "hz_start");
	*e = st_u64(c->state, "hz_end");
	return *a != UINT64_MAX && *e != UINT64_MAX;
}

/* The state after zone [a,e) is converted: done=e, no zone. Not committed. */
static void state_done(struct conv *c, uint64_t e)
{
	st_set_u64(c->state, "done", e);
	json_object_del(c->state, "hz_start");
	json_object_del(c->state, "hz_end");
	json_object_del(c->state, "jsha");
}

/* ---- repair: what a dead run left ---------------------------------------------------- */

/* Makes the kernel state consistent with the data: a held zone is finished
 * from its journal when the header names it, else (never written) released
 * on the old key. */
static int online_repair(struct conv *c)
{
	const struct conv_online *on = c->p->online;
	uint64_t za = 0, zb = 0, a, e;
	bool held = false;
	int rc = on->inspect(on->arg, &za, &zb, &held, c->err);
	if (rc < 0 || !held)
		return rc;
	if (!state_zone(c, &a, &e) || a != za || e != zb)
		return on->release(on->arg, false, c->err);
	rc = zone_from_journal(c, a, e);
	if (rc < 0)
		return rc; /* stays held: better than serving the wrong key */
	if ((rc = on->release(on->arg, true, c->err)) < 0)
		return rc;
	state_done(c, e);
	return hdr_commit(c);
}

/* ---- the guardian ------------------------------------------------------------------ */

/* The header as it is on the disk now (the child's copy is from the fork). */
static int reload_header(struct conv *c)
{
	size_t len = (size_t)(2 * c->hdr->hdr_size);
	uint8_t *b = abuf(len);
	if (!b)
		return -ENOMEM;
	struct luks2_hdr *h = NULL;
	int rc = c->io->ops->pread(c->io, 1, b, len, 0);
	if (rc == 0)
		rc = luks2_hdr_parse(b, len, c->what, &h, NULL, c->err);
	abuf_free(b, len);
	if (rc < 0)
		return rc;
	luks2_hdr_free(c->hdr);
	c->hdr = h;
	json_decref(c->state);
	c->state = NULL;
	int g = luks2_conversion_get(c->hdr, &c->state, c->err);
	return g == -ENOENT ? 0 : g;
}

/* The guardian talks to no one: it closes every socket the caller had (an
 * agent's metrics listener and status socket, its Vault and API
 * connections). Kept open, they would outlive a killed agent for as long as
 * the repair takes: its restart would find the metrics port taken and its
 * status socket answered by nobody ("another agent is running"). */
static void guardian_close_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		struct stat st;
		if (*end || end == de->d_name || fd < 3 || fd == dirfd(d))
			continue;
		if (fstat((int)fd, &st) == 0 && S_ISSOCK(st.st_mode))
			close((int)fd);
	}
	closedir(d);
}

static void guardian_main(struct conv *c, int rfd, int ready_fd)
{
	(void)setsid(); /* a kill of the caller's process group spares it */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	(void)secmem_lock_all(); /* memory locks are not inherited by a child */
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		close(nul);
	}
	guardian_close_sockets();
	/* Set up: the run may hold zones now. */
	ssize_t w = write(ready_fd, "R", 1);
	(void)w;
	close(ready_fd);
	char b = 0;
	ssize_t r;
	do
		r = read(rfd, &b, 1);
	while (r < 0 && errno == EINTR);
	if (r == 1 && b == 'Q')
		_exit(0);
	/* The run died. Its io_uring is not ours to use: synchronous I/O on
	 * the same fds (and the same header lock, which this process keeps
	 * until it is done, so a new resume waits for it). */
	struct engine_io *io = NULL;
	struct werr e = {0};
	c->err = &e;
	int rc = engine_io_sync_new(c->fds, &io, &e);
	if (rc == 0) {
		c->io = io;
		rc = reload_header(c);
	}
	if (rc == 0 && c->state)
		rc = online_repair(c);
	else if (rc == 0) {
		uint64_t za, zb;
		bool held;
		rc = c->p->online->inspect(c->p->online->arg, &za, &zb, &held, &e);
		if (rc == 0 && held) /* finished header: the zone was converted */
			rc = c->p->online->release(c->p->online->arg, true, &e);
	}
	/* dprintf: another thread of the caller may have held stderr's lock at
	 * the fork, and this process has only this thread. */
	if (rc < 0)
		dprintf(STDERR_FILENO, "wrapd guardian: %s: %s\n", c->what, werr_str(&e, rc));
	_exit(rc < 0 ? 1 : 0);
}

static int guardian_start(struct conv *c)
{
	if (c->p->online->no_guardian)
		return 0;
	int pfd[2], rdy[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return werr_set(c->err, -errno, "%s: cannot start the guardian: %s", c->what,
				strerror(errno));
	if (pipe2(rdy, O_CLOEXEC) < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		return werr_set(c->err, -e, "%s: cannot start the guardian: %s", c->what, strerror(e));
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		close(rdy[0]);
		close(rdy[1]);
		return werr_set(c->err, -e, "%s: cannot start the guardian: %s", c->what, strerror(e));
	}
	if (pid == 0) {
		close(pfd[1]);
		close(rdy[0]);
		guardian_main(c, pfd[0], rdy[1]);
	}
	close(pfd[0]);
	close(rdy[1]);
	c->guard_fd = pfd[1];
	c->guard_pid = pid;
	/* Wait until it is set up: a kill of the process group that came
	 * before its setsid() and signal settings would take it too, and the
	 * run must not hold a zone without a guardian. */
	char b = 0;
	ssize_t r;
	do
		r = read(rdy[0], &b, 1);
	while (r < 0 && errno == EINTR);
	close(rdy[0]);
	if (r != 1) { /* it died: reap it; no zone was held */
		close(c->guard_fd);
		c->guard_fd = -1;
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return werr_set(c->err, -ECHILD, "%s: the guardian process died as it started; "
				"nothing was changed: run the command again", c->what);
	}
	return 0;
}

/* The end of the run: after success or a clean stop the guardian leaves
 * without touching anything; after an error it makes the kernel state
 * consistent as after a crash (a no-op when nothing is held), and the run
 * waits for it. */
static void guardian_stop(struct conv *c, bool repair)
{
	if (c->guard_fd < 0)
		return;
	if (!repair) {
		ssize_t w = write(c->guard_fd, "Q", 1);
		(void)w;
	}
	close(c->guard_fd);
	c->guard_fd = -1;
	int st;
	while (waitpid(c->guard_pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* ---- the run ------------------------------------------------------------------------ */

/* Sleeps so that this run stays under max_rate; stops early on a stop request. */
static void rate_wait(struct conv *c, double t0, uint64_t bytes)
{
	uint64_t rate = c->p->online->max_rate;
	if (!rate)
		return;
	double want = (double)bytes / (double)rate;
	for (;;) {
		double left = t0 + want - mono_now();
		if (left <= 0 || conv_stop_requested(c))
			return;
		if (left > 0.1)
			left = 0.1;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(left * 1e9)};
		nanosleep(&ts, NULL);
	}
}

/* One zone: hold, convert, release. A failure after the journal leaves
 * the zone finished from the journal when possible, else held. */
static int one_zone(struct conv *c, uint64_t a, uint64_t b, uint64_t jhz)
{
	const struct conv_online *on = c->p->online;
	double t0 = mono_now();
	int rc = on->hold(on->arg, a, b, c->err);
	if (rc < 0)
		return rc;
	bool journaled = false;
	rc = run_zone(c, a, b, jhz, &journaled);
	struct werr e2 = {0};
	int rr;
	if (rc == 0 || (rc == -EINTR && journaled)) {
		rr = on->release(on->arg, true, &e2);
	} else if (!journaled) {
		rr = on->release(on->arg, false, &e2);
	} else {
		/* Written in part: finish it from the journal, or keep it held. */
		rr = zone_from_journal(c, a, b);
		if (rr == 0)
			rr = on->release(on->arg, true, &e2);
		else
			return werr_set(c->err, rc,
					"%s: %s; the zone at %llu MiB stays held: run 'wrapctl resume %s'",
					c->what, werr_str(c->err, rc), (unsigned long long)(a >> 20),
					c->what);
	}
	double held = mono_now() - t0;
	c->zones++;
	c->hold_sum += held;
	if (held > c->hold_max)
		c->hold_max = held;
	if (rr < 0 && rc == 0)
		return werr_set(c->err, rr, "%s", werr_str(&e2, rr));
	return rc;
}

/* A zone size other than the one the state records (a resume with another
 * --zone-size): the journal's two slots are placed by the zone size, so a
 * slot written with the new one may overlap the slot the durable state names.
 * Hence a commit first that records the new size and names no zone (the
 * zone just finished is recorded done); only then is a zone journaled with
 * it. A crash before that commit leaves the old state, whose slot is intact. */
static int zone_size_switch(struct conv *c, uint64_t *jhz, uint64_t want)
{
	if (want == *jhz)
		return 0;
	st_set_u64(c->state, "jhotzone", want);
	int rc = hdr_commit(c);
	if (rc == 0)
		*jhz = want;
	return rc;
}

/* A clean stop before zone a: every zone before it is converted, fsynced
 * and released, so done=a is committed (what the next zone's commit would
 * record, without its journal): the checkpoint is exact for a resume and
 * for the status, and a stop in a rate-limit pause ends at once. */
static int stop_at(struct conv *c, uint64_t a)
{
	uint64_t za, ze;
	if (st_u64(c->state, "done") != a || state_zone(c, &za, &ze)) {
		state_done(c, a);
		int rc = hdr_commit(c);
		if (rc < 0)
			return rc;
	}
	return -EINTR;
}

static int online_zones(struct conv *c, uint64_t jhz, uint64_t want)
{
	uint64_t done = st_u64(c->state, "done"), a, e;
	if (done == UINT64_MAX || done > c->size)
		return werr_set(c->err, -EUCLEAN, "%s: conversion state is damaged", c->what);
	int rc;
	if (state_zone(c, &a, &e)) {
		/* Journaled before the crash: converted and released, or (its
		 * holder and guardian gone) finished by the repair. Checked again
		 * under hold: every sector still old is converted. */
		const struct conv_online *on = c->p->online;
		if ((rc = on->hold(on->arg, a, e, c->err)) < 0)
			return rc;
		rc = zone_from_journal(c, a, e);
		if (rc < 0)
			return rc;
		if ((rc = on->release(on->arg, true, c->err)) < 0)
			return rc;
		state_done(c, e);
		c->done_bytes = e;
		done = e;
	}
	c->done_bytes = done;
	if ((rc = zone_size_switch(c, &jhz, want)) < 0)
		return rc;
	c->zone_size = jhz;
	double t0 = mono_now();
	uint64_t moved = 0;
	for (a = done; a < c->size; a = e) {
		e = a + jhz < c->size ? a + jhz : c->size;
		if (!conv_stop_requested(c))
			rate_wait(c, t0, moved);
		if (conv_stop_requested(c))
			return stop_at(c, a);
		if ((rc = one_zone(c, a, e, jhz)) < 0)
			return rc;
		moved += e - a;
	}
	return 0;
}

int online_execute(struct conv *c)
{
	const struct conv_online *on = c->p->online;
	if (c->op != CONV_REKEY)
		return werr_set(c->err, -EBUSY,
				"%s: an interrupted %s is in progress and only a rekey runs while the volume is open; close it, then run 'wrapctl resume %s'",
				c->what, conv_op_name(c->op), c->what);
	c->total = c->size;
	if (on->map_size != c->size)
		return werr_set(c->err, -EINVAL,
				"%s: the mapping covers %llu bytes but the data segment has %llu; close and reopen it first",
				c->what, (unsigned long long)on->map_size, (unsigned long long)c->size);
	/* The zone size: asked for, else the recorded one (resume), else the
	 * params' hotzone or the default. jhz: the journal's layout now. */
	uint64_t jhz = st_u64(c->state, "jhotzone"), want;
	int rc = inplace_zone(c, on->zone_size ? on->zone_size
				 : jhz != UINT64_MAX ? jhz
				 : c->p->hotzone ? c->p->hotzone : CONV_ZONE_DEFAULT, &want);
	if (rc < 0)
		return rc;
	if (jhz == UINT64_MAX) {
		st_set_u64(c->state, "jhotzone", want);
		jhz = want;
	}
	int od = luks2_digest_for_segment(c->hdr, 0);
	uint64_t nd = st_u64(c->state, "new_digest");
	if (od < 0 || nd == UINT64_MAX)
		return werr_set(c->err, -EUCLEAN, "%s: rekey state lacks a digest", c->what);
	rc = on->begin(on->arg, &c->old_vk, &c->new_vk, (unsigned)od, (unsigned)nd, c->err);
	if (rc < 0)
		return rc;
	if ((rc = guardian_start(c)) < 0)
		return rc;
	rc = online_repair(c);
	if (rc == 0)
		rc = online_zones(c, jhz, want);
	if (rc == 0) {
		state_done(c, c->size);
		rc = hdr_commit(c);
	}
	if (rc == 0)
		rc = on->finish(on->arg, c->err);
	if (rc == 0)
		rc = conv_finish_header(c);
	guardian_stop(c, rc < 0 && rc != -EINTR);
	return rc;
}

/* ---- opening in the middle ----------------------------------------------------------- */

int conv_rekey_new_token(const struct luks2_device *dv, struct wrapd_token *tok, struct werr *err)
{
	json_t *st = NULL;
	int rc = luks2_conversion_get(dv->hdr, &st, err);
	if (rc < 0)
		return rc == -ENOENT ? -EOPNOTSUPP : rc;
	enum conv_op op;
	json_t *nt = json_object_get(st, "new_token");
	if (!dv->hdr->req_wrapd_reencrypt || conv_op_from_name(st_str(st, "op"), &op) < 0 ||
	    op != CONV_REKEY || !json_is_object(nt)) {
		json_decref(st);
		return -EOPNOTSUPP;
	}
	rc = token_from_json(nt, tok);
	json_decref(st);
	return rc;
}

static int copy_key(const struct secbuf *src, struct secbuf *dst)
{
	int rc = secbuf_alloc(dst, src->len);
	return rc < 0 ? rc : secbuf_append(dst, src->data, src->len);
}

int conv_rekey_prepare_open(struct luks2_device *dv, const struct secbuf *old_vk,
			    const struct secbuf *new_vk, uint64_t *done, unsigned *old_digest,
			    unsigned *new_digest, struct werr *err)
{
	struct conv_params P = {.device = dv->dev.path, .op = CONV_RESUME,
				.header = dv->hdev.fd >= 0 ? dv->hdr_path : NULL};
	struct conv C = {.p = &P, .err = err, .what = dv->dev.path, .bfd = dv->dev.fd, .dfd = -1,
			 .hfd_own = dv->hdev.fd, .detached = dv->hdev.fd >= 0, .guard_fd = -1,
			 .hdr = dv->hdr, .dev_size = dv->dev.size, .op = CONV_REKEY};
	struct conv *c = &C;
	int rc = luks2_conversion_get(c->hdr, &c->state, err);
	enum conv_op op;
	if (rc < 0 || !c->hdr->req_wrapd_reencrypt ||
	    conv_op_from_name(st_str(c->state, "op"), &op) < 0 || op != CONV_REKEY) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	c->hash_seed = st_u64(c->state, "seed");
	int od = luks2_digest_for_segment(c->hdr, 0);
	uint64_t nd = st_u64(c->state, "new_digest");
	if (od < 0 || nd == UINT64_MAX || c->hdr->sector_size == 0) {
		rc = werr_set(err, -EUCLEAN, "%s: rekey state is damaged", c->what);
		goto out;
	}
	if (luks2_digest_verify(c->hdr, (unsigned)od, old_vk, err) < 0 ||
	    luks2_digest_verify(c->hdr, (unsigned)nd, new_vk, err) < 0) {
		rc = werr_set(err, -EPERM, "%s: a key Vault unwrapped does not match its digest", c->what);
		goto out;
	}
	*old_digest = (unsigned)od;
	*new_digest = (unsigned)nd;
	c->sector_size = c->hdr->sector_size;
	c->seg_off = c->hdr->data_offset;
	uint64_t end = c->hdr->data_dynamic ? c->dev_size : c->seg_off + c->hdr->data_size;
	c->size = end > c->seg_off ? (end - c->seg_off) / c->sector_size * c->sector_size : 0;
	if (st_u64(c->state, "size") != c->size) {
		rc = werr_set(err, -EUCLEAN, "%s: the device size changed during the rekey", c->what);
		goto out;
	}
	if ((rc = copy_key(old_vk, &c->old_vk)) < 0 || (rc = copy_key(new_vk, &c->new_vk)) < 0 ||
	    (rc = journal_key_setup(c, false)) < 0)
		goto out;
	uint64_t a, e;
	if (state_zone(c, &a, &e)) {
		/* Not mapped (the caller holds the device exclusively): finish the
		 * zone a crash may have left half-written, and record it. */
		rc = bdev_reopen(&dv->dev, O_RDWR | O_DIRECT, &c->dfd, err);
		if (rc == -EINVAL)
			rc = bdev_reopen(&dv->dev, O_RDWR, &c->dfd, err);
		c->fds[0] = c->dfd;
		c->fds[1] = c->detached ? c->hfd_own : c->dfd;
		if (rc == 0)
			rc = engine_io_sync_new(c->fds, &c->io, err);
		if (rc == 0)
			rc = zone_from_journal(c, a, e);
		if (rc == 0) {
			state_done(c, e);
			rc = hdr_commit(c);
		}
	}
	if (rc == 0)
		*done = st_u64(c->state, "done");
	if (rc == 0 && *done > c->size)
		rc = werr_set(err, -EUCLEAN, "%s: rekey state is damaged", c->what);
out:
	if (c->io)
		c->io->ops->free(c->io);
	if (c->dfd >= 0)
		close(c->dfd);
	json_decref(c->state);
	secbuf_free(&c->old_vk);
	secbuf_free(&c->new_vk);
	secbuf_free(&c->jkey);
	return rc;
}
