/*
 * engine: the conversion entry points. conv_run opens the device (and the
 * header file) once, then: recovery (recover.c) reads what is there, the
 * plan (plan.c) decides and records what will happen, execution
 * (execute.c) does it. The invariant is in engine/engine.h; the long form,
 * the layouts and the records in engine/README.md.
 */
#include "engine/internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

static int open_files(struct conv *c)
{
	const struct conv_params *p = c->p;
	int rc = engine_check_not_held(p->device, c->err);
	if (rc == 0 && p->header && access(p->header, F_OK) == 0)
		rc = engine_check_not_held(p->header, c->err);
	if (rc < 0)
		return rc;
	rc = luks2_dev_open(p->device, true, true, &c->bfd, &c->dev_size, c->err);
	if (rc < 0)
		return rc;
	int fl = O_RDWR | O_CLOEXEC | (c->hooks.no_direct ? 0 : O_DIRECT);
	c->dfd = open(p->device, fl);
	if (c->dfd < 0 && errno == EINVAL && !c->hooks.no_direct)
		c->dfd = open(p->device, O_RDWR | O_CLOEXEC); /* no O_DIRECT here (tmpfs) */
	if (c->dfd < 0)
		return werr_set(c->err, -errno, "%s: cannot open: %s", p->device, strerror(errno));
	rc = luks2_lock(c->bfd, p->device, true, &c->lock, c->err);
	if (rc < 0)
		return rc;
	return 0;
}

static int open_header_file(struct conv *c, bool create)
{
	const char *h = c->p->header;
	int fl = O_RDWR | O_CLOEXEC;
	if (create)
		fl |= O_CREAT | O_EXCL;
	c->hfd_own = open(h, fl, 0600);
	if (c->hfd_own < 0)
		return werr_set(c->err, -errno, "%s: cannot %s the header file: %s", h,
				create ? "create" : "open", strerror(errno));
	c->created_hdr_file = create;
	if (create && ftruncate(c->hfd_own, (off_t)ENGINE_DETACHED_HDR_SIZE) < 0)
		return werr_set(c->err, -errno, "%s: %s", h, strerror(errno));
	return 0;
}

static int make_io(struct conv *c)
{
	c->fds[0] = c->dfd;
	c->fds[1] = c->detached ? c->hfd_own : c->dfd;
	int rc;
	switch (c->hooks.io_kind) {
	case CONV_IO_SYNC:
		rc = engine_io_sync_new(c->fds, &c->io, c->err);
		break;
	case CONV_IO_SIM:
		rc = engine_io_sim_new(c->fds, c->hooks.sim_loss_at, c->hooks.sim_seed, &c->io, c->err);
		break;
	default:
		rc = engine_io_uring_new(c->fds, 0, &c->io, c->err);
		break;
	}
	if (rc == 0) {
		c->io->hook = c->hooks.hook;
		c->io->hook_arg = c->hooks.hook_arg;
	}
	return rc;
}

/* ---- the entry point ---------------------------------------------------------------- */

static void conv_cleanup(struct conv *c)
{
	if (c->io)
		c->io->ops->free(c->io);
	luks2_unlock(&c->lock);
	if (c->dfd >= 0)
		close(c->dfd);
	if (c->bfd >= 0)
		close(c->bfd);
	if (c->hfd_own >= 0)
		close(c->hfd_own);
	luks2_hdr_free(c->hdr);
	json_decref(c->state);
	secbuf_free(&c->old_vk);
	secbuf_free(&c->new_vk);
	secbuf_free(&c->jkey);
	abuf_free(c->bubble, PARK_LEN);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Opens the device once for the header, once O_DIRECT for the data (the
 * blockdev module will derive both from one open), the header file, and
 * the I/O backend. */
static int conv_open(struct conv *c)
{
	const struct conv_params *p = c->p;
	int rc = open_files(c);
	if (rc < 0)
		return rc;
	if (c->detached) {
		struct stat st;
		bool exists = stat(p->header, &st) == 0;
		if (!exists && p->op != CONV_ENCRYPT)
			return werr_set(c->err, -ENOENT, "%s: header file not found", p->header);
		if ((rc = open_header_file(c, !exists)) < 0)
			return rc;
	}
	return make_io(c);
}

int conv_run(const struct conv_params *p, struct conv_result *res, struct werr *err)
{
	struct conv C = {.p = p, .err = err, .what = p->device, .bfd = -1, .dfd = -1, .hfd_own = -1,
			 .lock = LUKS2_LOCK_INIT, .detached = p->header != NULL};
	struct conv *c = &C;
	if (p->test)
		c->hooks = *p->test;
	struct conv_result R = {0};
	double t0 = now_s();
	int rc = conv_open(c);
	if (rc == 0)
		rc = recover_head(c);
	if (rc == 0 && c->finished) {
		R.op = c->op; /* recovery completed it */
	} else if (rc == 0 || rc == -ENODEV) {
		rc = c->have_hdr ? plan_from_header(c) : plan_fresh(c);
		if (rc == 0) {
			memcpy(R.uuid, c->hdr->uuid, sizeof(R.uuid) - 1);
			R.op = c->op;
			rc = conv_execute(c);
		}
	}
	if (rc == -EINTR) {
		R.interrupted = true;
		werr_set(err, -EINTR,
			 "%s: %s interrupted at a checkpoint; run 'wrapctl resume %s%s%s' to continue",
			 c->what, conv_op_name(c->op), c->what, c->detached ? " --header " : "",
			 c->detached ? p->header : "");
	}
	R.resumed = c->resumed;
	R.power_lost = c->io && engine_io_sim_lost(c->io);
	if (rc < 0 && c->created_hdr_file && !c->hdr_committed)
		(void)unlink(p->header); /* refused before anything was written */
	R.bytes = c->done_bytes;
	R.seconds = now_s() - t0;
	if (res)
		*res = R;
	conv_cleanup(c);
	return rc;
}

int conv_status(const char *device, const char *header, enum conv_op *op, struct werr *err)
{
	*op = CONV_RESUME;
	int fd = open(header ? header : device, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return werr_set(err, -errno, "%s: %s", header ? header : device, strerror(errno));
	struct luks2_hdr *h = NULL;
	struct werr e2 = {0};
	int rc = luks2_hdr_read(fd, device, &h, NULL, &e2);
	close(fd);
	if (rc == 0) {
		json_t *st = NULL;
		if (luks2_conversion_get(h, &st, NULL) == 0 && h->req_wrapd_reencrypt)
			(void)conv_op_from_name(st_str(st, "op"), op);
		json_decref(st);
		luks2_hdr_free(h);
	}
	return 0;
}
