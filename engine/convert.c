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

/* One open of the device for the whole conversion (blockdev/ through
 * format/): O_EXCL on a block device, the header lock, refused by name while
 * anything uses it. The O_DIRECT data fd is derived from that open, never
 * from the path again. */
static int open_files(struct conv *c)
{
	const struct conv_params *p = c->p;
	/* Online, the mapping holds the device (the caller checked that it is
	 * the volume's own wrapd mapping and nothing else). */
	unsigned how = LUKS2_DEV_WRITE | LUKS2_DEV_LOCK_EX;
	if (!p->online)
		how |= LUKS2_DEV_EXCL | LUKS2_DEV_UNUSED;
	int rc = luks2_device_open(&c->dv, p->device, NULL, how, c->err);
	if (rc < 0)
		return rc;
	c->bfd = c->dv.dev.fd;
	c->dev_size = c->dv.dev.size;
	rc = bdev_reopen(&c->dv.dev, O_RDWR | (c->hooks.no_direct ? 0 : O_DIRECT), &c->dfd, c->err);
	if (rc == -EINVAL && !c->hooks.no_direct)
		rc = bdev_reopen(&c->dv.dev, O_RDWR, &c->dfd, c->err); /* no O_DIRECT here (tmpfs) */
	return rc;
}

/* The header file, opened once too: an existing one is refused while
 * anything uses it; a new one is created O_EXCL. */
static int open_header_file(struct conv *c, bool create)
{
	const char *h = c->p->header;
	int rc;
	if (create) {
		int fd = open(h, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			return werr_set(c->err, -errno, "%s: cannot create the header file: %s", h,
					strerror(errno));
		c->created_hdr_file = true;
		rc = bdev_adopt(&c->hf, fd, h, BDEV_WRITE, c->err);
		if (rc == 0 && ftruncate(fd, (off_t)ENGINE_DETACHED_HDR_SIZE) < 0)
			rc = werr_set(c->err, -errno, "%s: %s", h, strerror(errno));
	} else {
		rc = bdev_open(&c->hf, h, BDEV_WRITE, c->err);
		if (rc < 0)
			rc = werr_prefix(c->err, rc, "cannot open the header file");
		else
			rc = bdev_check_unused(&c->hf, c->err);
	}
	c->hfd_own = c->hf.fd;
	return rc;
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
	if (c->dfd >= 0)
		close(c->dfd);
	luks2_device_close(&c->dv);
	bdev_close(&c->hf);
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

/* Opens the device once (the O_DIRECT data fd derived from it), the header
 * file, and the I/O backend. */
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
			 .dv = LUKS2_DEVICE_INIT, .hf = BDEV_INIT, .detached = p->header != NULL,
			 .guard_fd = -1};
	struct conv *c = &C;
	if (p->test)
		c->hooks = *p->test;
	struct conv_result R = {0};
	double t0 = now_s();
	/*
	 * The AES-XTS key schedules (whose first round keys are the VK halves)
	 * live in OpenSSL's contexts, one pair per worker thread, allocated by
	 * OpenSSL's providers with OPENSSL_zalloc: its secure heap does not
	 * serve them, and CRYPTO_set_mem_functions would have to be installed
	 * before OpenSSL's first allocation, for the whole process. So for the
	 * duration of the conversion every page of the process is locked as it
	 * is touched (MCL_ONFAULT: nothing is populated in advance), and none
	 * can reach swap. Refused when the memory cannot be locked.
	 */
	int rc = secmem_lock_all();
	if (rc < 0) {
		rc = werr_set(err, rc,
			      "%s: cannot lock memory for the key schedules (%s); run as root or raise RLIMIT_MEMLOCK (ulimit -l unlimited)",
			      p->device, strerror(-rc));
		if (res)
			*res = R;
		return rc;
	}
	rc = conv_open(c);
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
	R.zones = c->zones;
	R.hold_max_s = c->hold_max;
	R.hold_mean_s = c->zones ? c->hold_sum / (double)c->zones : 0;
	R.zone_size = c->zone_size;
	if (res)
		*res = R;
	conv_cleanup(c);
	(void)secmem_lock_end();
	return rc;
}

int conv_status(const char *device, const char *header, enum conv_op *op, struct werr *err)
{
	*op = CONV_RESUME;
	_cleanup_bdev_ struct bdev b = BDEV_INIT;
	int rc = bdev_open(&b, header ? header : device, 0, err);
	if (rc < 0)
		return rc;
	struct luks2_hdr *h = NULL;
	struct werr e2 = {0};
	rc = luks2_hdr_read(b.fd, device, &h, NULL, &e2);
	if (rc == 0) {
		json_t *st = NULL;
		if (luks2_conversion_get(h, &st, NULL) == 0 && h->req_wrapd_reencrypt)
			(void)conv_op_from_name(st_str(st, "op"), op);
		json_decref(st);
		luks2_hdr_free(h);
	}
	return 0;
}
