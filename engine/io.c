/*
 * engine: I/O backends. io_uring for real work; a synchronous one; and the
 * power-loss simulator the crash tests plug in.
 */
#include "engine/internal.h"

#include <liburing.h>
#include <sys/eventfd.h>

/* ---- shared helpers --------------------------------------------------------- */

static void op_tick(struct engine_io *io)
{
	io->ops_count++;
	if (io->hook)
		io->hook(io->hook_arg, io->ops_count);
}

static int sys_pread(int fd, void *p, size_t len, uint64_t off)
{
	return read_full_at(fd, p, len, (off_t)off);
}

static int sys_pwrite(int fd, const void *p, size_t len, uint64_t off)
{
	return write_full_at(fd, p, len, (off_t)off);
}

static int sys_fsync(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

/* ---- io_uring --------------------------------------------------------------- */

#define EVFD_TAG UINT64_MAX

struct uring_io {
	struct engine_io io;
	struct io_uring ring;
	unsigned depth;
	bool bufs_fixed;
	bool ev_armed;
	uint64_t evbuf;
	unsigned queued;
};

static int uring_bufs_register(struct engine_io *io, const struct iovec *iov, unsigned n)
{
	struct uring_io *u = (struct uring_io *)io;
	/* Registered buffers need locked memory; without the privilege we use
	 * plain reads and writes (slightly slower, same semantics). */
	u->bufs_fixed = io_uring_register_buffers(&u->ring, iov, n) == 0;
	return 0;
}

static void uring_bufs_unregister(struct engine_io *io)
{
	struct uring_io *u = (struct uring_io *)io;
	if (u->bufs_fixed)
		io_uring_unregister_buffers(&u->ring);
	u->bufs_fixed = false;
}

static struct io_uring_sqe *uring_sqe(struct uring_io *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static int uring_rw(struct engine_io *io, bool write, unsigned file, unsigned buf_idx, void *p,
		    size_t len, uint64_t off, uint64_t tag)
{
	struct uring_io *u = (struct uring_io *)io;
	if (io->dead)
		return -EIO;
	if (write)
		op_tick(io);
	struct io_uring_sqe *sqe = uring_sqe(u);
	if (!sqe)
		return -EBUSY;
	if (u->bufs_fixed) {
		if (write)
			io_uring_prep_write_fixed(sqe, (int)file, p, (unsigned)len, off, (int)buf_idx);
		else
			io_uring_prep_read_fixed(sqe, (int)file, p, (unsigned)len, off, (int)buf_idx);
	} else {
		if (write)
			io_uring_prep_write(sqe, (int)file, p, (unsigned)len, off);
		else
			io_uring_prep_read(sqe, (int)file, p, (unsigned)len, off);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, tag);
	u->queued++;
	return 0;
}

static int uring_read(struct engine_io *io, unsigned file, unsigned buf_idx, void *p, size_t len,
		      uint64_t off, uint64_t tag)
{
	return uring_rw(io, false, file, buf_idx, p, len, off, tag);
}

static int uring_write(struct engine_io *io, unsigned file, unsigned buf_idx, const void *p,
		       size_t len, uint64_t off, uint64_t tag)
{
	return uring_rw(io, true, file, buf_idx, (void *)p, len, off, tag);
}

static int uring_wait(struct engine_io *io, bool block, struct engine_io_cqe *cqes,
		      unsigned max, unsigned *n)
{
	struct uring_io *u = (struct uring_io *)io;
	*n = 0;
	int evfd = io->evfd;
	if (block && !u->ev_armed && evfd >= 0) {
		struct io_uring_sqe *sqe = uring_sqe(u);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_read(sqe, evfd, &u->evbuf, sizeof(u->evbuf), 0);
		io_uring_sqe_set_data64(sqe, EVFD_TAG);
		u->ev_armed = true;
	}
	int r = block ? io_uring_submit_and_wait(&u->ring, 1) : io_uring_submit(&u->ring);
	if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		return r;
	u->queued = 0;
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&u->ring, head, cqe) {
		if (*n >= max)
			break;
		seen++;
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		if (tag == EVFD_TAG) {
			u->ev_armed = false;
			continue;
		}
		cqes[*n].tag = tag;
		cqes[*n].res = cqe->res;
		(*n)++;
	}
	io_uring_cq_advance(&u->ring, seen);
	return 0;
}

static int uring_pread(struct engine_io *io, unsigned file, void *p, size_t len, uint64_t off)
{
	return io->dead ? -EIO : sys_pread(io->fds[file], p, len, off);
}

static int uring_pwrite(struct engine_io *io, unsigned file, const void *p, size_t len,
			uint64_t off)
{
	if (io->dead)
		return -EIO;
	op_tick(io);
	return sys_pwrite(io->fds[file], p, len, off);
}

static int uring_fsync(struct engine_io *io, unsigned file)
{
	if (io->dead)
		return -EIO;
	op_tick(io);
	return sys_fsync(io->fds[file]);
}

static void uring_free(struct engine_io *io)
{
	struct uring_io *u = (struct uring_io *)io;
	if (!u)
		return;
	/* Drain: the armed eventfd read completes once the eventfd is written
	 * (a blocked read in an io-wq worker cannot be cancelled). */
	while (u->ev_armed) {
		struct io_uring_cqe *cqe;
		uint64_t one = 1;
		if (write(io->evfd, &one, sizeof(one)) < 0)
			break;
		io_uring_submit(&u->ring);
		if (io_uring_wait_cqe(&u->ring, &cqe) < 0)
			break;
		if (io_uring_cqe_get_data64(cqe) == EVFD_TAG)
			u->ev_armed = false;
		io_uring_cqe_seen(&u->ring, cqe);
	}
	uring_bufs_unregister(io);
	io_uring_queue_exit(&u->ring);
	if (io->evfd >= 0)
		close(io->evfd);
	free(u);
}

static const struct engine_io_ops uring_ops = {
	.bufs_register = uring_bufs_register,
	.bufs_unregister = uring_bufs_unregister,
	.read = uring_read,
	.write = uring_write,
	.wait = uring_wait,
	.pread = uring_pread,
	.pwrite = uring_pwrite,
	.fsync = uring_fsync,
	.free = uring_free,
};

int engine_io_uring_new(const int fds[2], unsigned depth, struct engine_io **out,
			struct werr *err)
{
	struct uring_io *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->depth = depth ? depth : 128;
	/* Newest flags first; older kernels reject them with -EINVAL. */
	static const unsigned flag_sets[] = {
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int r = -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(flag_sets); i++) {
		struct io_uring_params prm = {.flags = flag_sets[i]};
		r = io_uring_queue_init_params(u->depth, &u->ring, &prm);
		if (r != -EINVAL)
			break;
	}
	if (r < 0) {
		free(u);
		return werr_set(err, r, "io_uring setup failed: %s", strerror(-r));
	}
	r = io_uring_register_files(&u->ring, fds, 2);
	if (r < 0) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return werr_set(err, r, "io_uring file registration failed: %s", strerror(-r));
	}
	u->io.ops = &uring_ops;
	u->io.fds[0] = fds[0];
	u->io.fds[1] = fds[1];
	u->io.evfd = eventfd(0, EFD_CLOEXEC);
	if (u->io.evfd < 0) {
		r = -errno;
		uring_free(&u->io);
		return werr_set(err, r, "eventfd: %s", strerror(-r));
	}
	*out = &u->io;
	return 0;
}

/* ---- synchronous and simulated ------------------------------------------------ */

struct sim_file {
	uint8_t *old;          /* content before the first unflushed write, per sector */
	uint8_t *dirty;        /* per 512-byte sector: written since the last fsync */
	uint64_t *list;        /* dirty sector numbers */
	uint64_t nlist, nsec;
};

struct sync_io {
	struct engine_io io;
	struct engine_io_cqe *done;
	unsigned ndone, cap;
	/* simulator */
	bool sim;
	uint64_t loss_at, rng;
	struct sim_file files[2];
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static struct sim_file *sim_file(struct sync_io *s, unsigned file)
{
	if (file == 1 && s->io.fds[1] == s->io.fds[0])
		file = 0;
	return &s->files[file];
}

static int sim_init_file(struct sync_io *s, unsigned file)
{
	struct sim_file *f = sim_file(s, file);
	if (f->dirty)
		return 0;
	uint64_t size = 0;
	int r = fd_size(s->io.fds[file], &size);
	if (r < 0)
		return r;
	f->nsec = size / 512;
	f->old = malloc(f->nsec * 512 + 1);
	f->dirty = calloc(f->nsec + 1, 1);
	f->list = malloc((f->nsec + 1) * sizeof(uint64_t));
	return f->old && f->dirty && f->list ? 0 : -ENOMEM;
}

/* Before a write: remember the durable content of each sector it covers. */
static int sim_before_write(struct sync_io *s, unsigned file, size_t len, uint64_t off)
{
	struct sim_file *f = sim_file(s, file);
	for (uint64_t sec = off / 512; sec < (off + len + 511) / 512 && sec < f->nsec; sec++) {
		if (f->dirty[sec])
			continue;
		int r = sys_pread(s->io.fds[file], f->old + sec * 512, 512, sec * 512);
		if (r < 0)
			return r;
		f->dirty[sec] = 1;
		f->list[f->nlist++] = sec;
	}
	return 0;
}

static void sim_flushed(struct sync_io *s, unsigned file)
{
	struct sim_file *f = sim_file(s, file);
	for (uint64_t i = 0; i < f->nlist; i++)
		f->dirty[f->list[i]] = 0;
	f->nlist = 0;
}

/* The power goes: each 512-byte sector written since the last fsync of its
 * file survives or is lost (old content back) by a coin toss. */
static void sim_lose_power(struct sync_io *s)
{
	for (unsigned i = 0; i < 2; i++) {
		if (i == 1 && s->io.fds[1] == s->io.fds[0])
			break;
		struct sim_file *f = &s->files[i];
		for (uint64_t k = 0; k < f->nlist; k++) {
			uint64_t sec = f->list[k];
			if (xorshift(&s->rng) & 1)
				(void)sys_pwrite(s->io.fds[i], f->old + sec * 512, 512, sec * 512);
		}
		sim_flushed(s, i);
	}
	s->io.dead = true;
}

static int sync_tick(struct sync_io *s)
{
	if (s->io.dead)
		return -EIO;
	op_tick(&s->io);
	return 0;
}

static void sync_after_write(struct sync_io *s)
{
	if (s->sim && s->loss_at && s->io.ops_count >= s->loss_at)
		sim_lose_power(s);
}

static int sync_bufs_register(struct engine_io *io, const struct iovec *iov, unsigned n)
{
	return 0;
}
static void sync_bufs_unregister(struct engine_io *io) {}

static int sync_push(struct sync_io *s, uint64_t tag, int res)
{
	if (s->ndone == s->cap) {
		unsigned cap = s->cap ? 2 * s->cap : 64;
		struct engine_io_cqe *n = realloc(s->done, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->done = n;
		s->cap = cap;
	}
	s->done[s->ndone].tag = tag;
	s->done[s->ndone].res = res;
	s->ndone++;
	return 0;
}

static int sync_read(struct engine_io *io, unsigned file, unsigned buf_idx, void *p, size_t len,
		     uint64_t off, uint64_t tag)
{
	struct sync_io *s = (struct sync_io *)io;
	if (io->dead)
		return -EIO;
	int r = sys_pread(io->fds[file], p, len, off);
	return sync_push(s, tag, r < 0 ? r : (int)len);
}

static int sync_write(struct engine_io *io, unsigned file, unsigned buf_idx, const void *p,
		      size_t len, uint64_t off, uint64_t tag)
{
	struct sync_io *s = (struct sync_io *)io;
	int r = sync_tick(s);
	if (r < 0)
		return r;
	if (s->sim && (r = sim_before_write(s, file, len, off)) < 0)
		return r;
	r = sys_pwrite(io->fds[file], p, len, off);
	sync_after_write(s);
	return sync_push(s, tag, r < 0 ? r : (int)len);
}

static int sync_wait(struct engine_io *io, bool block, struct engine_io_cqe *cqes,
		     unsigned max, unsigned *n)
{
	struct sync_io *s = (struct sync_io *)io;
	*n = 0;
	if (s->ndone) {
		unsigned k = s->ndone < max ? s->ndone : max;
		memcpy(cqes, s->done, k * sizeof(*cqes));
		memmove(s->done, s->done + k, (s->ndone - k) * sizeof(*cqes));
		s->ndone -= k;
		*n = k;
		return 0;
	}
	if (block && io->evfd >= 0) {
		uint64_t v;
		ssize_t r = read(io->evfd, &v, sizeof(v));
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

static int sync_pread(struct engine_io *io, unsigned file, void *p, size_t len, uint64_t off)
{
	return io->dead ? -EIO : sys_pread(io->fds[file], p, len, off);
}

static int sync_pwrite(struct engine_io *io, unsigned file, const void *p, size_t len,
		       uint64_t off)
{
	struct sync_io *s = (struct sync_io *)io;
	int r = sync_tick(s);
	if (r < 0)
		return r;
	if (s->sim && (r = sim_before_write(s, file, len, off)) < 0)
		return r;
	r = sys_pwrite(io->fds[file], p, len, off);
	sync_after_write(s);
	return r;
}

static int sync_fsync(struct engine_io *io, unsigned file)
{
	struct sync_io *s = (struct sync_io *)io;
	int r = sync_tick(s);
	if (r < 0)
		return r;
	if (s->sim && s->loss_at && s->io.ops_count >= s->loss_at) {
		/* The power went before this flush completed. */
		sim_lose_power(s);
		return -EIO;
	}
	r = sys_fsync(io->fds[file]);
	if (r == 0 && s->sim)
		sim_flushed(s, file);
	return r;
}

static void sync_free(struct engine_io *io)
{
	struct sync_io *s = (struct sync_io *)io;
	if (!s)
		return;
	if (io->evfd >= 0)
		close(io->evfd);
	free(s->done);
	for (int i = 0; i < 2; i++) {
		if (s->files[i].old) /* old content of written sectors: plaintext */
			explicit_bzero(s->files[i].old, s->files[i].nsec * 512 + 1);
		free(s->files[i].old);
		free(s->files[i].dirty);
		free(s->files[i].list);
	}
	free(s);
}

static const struct engine_io_ops sync_ops = {
	.bufs_register = sync_bufs_register,
	.bufs_unregister = sync_bufs_unregister,
	.read = sync_read,
	.write = sync_write,
	.wait = sync_wait,
	.pread = sync_pread,
	.pwrite = sync_pwrite,
	.fsync = sync_fsync,
	.free = sync_free,
};

int engine_io_sync_new(const int fds[2], struct engine_io **out, struct werr *err)
{
	struct sync_io *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->io.ops = &sync_ops;
	s->io.fds[0] = fds[0];
	s->io.fds[1] = fds[1];
	s->io.evfd = eventfd(0, EFD_CLOEXEC);
	if (s->io.evfd < 0) {
		int r = -errno;
		free(s);
		return werr_set(err, r, "eventfd: %s", strerror(-r));
	}
	*out = &s->io;
	return 0;
}

int engine_io_sim_new(const int fds[2], uint64_t loss_at, uint64_t seed,
		      struct engine_io **out, struct werr *err)
{
	struct engine_io *io = NULL;
	int r = engine_io_sync_new(fds, &io, err);
	if (r < 0)
		return r;
	struct sync_io *s = (struct sync_io *)io;
	s->sim = true;
	s->loss_at = loss_at;
	s->rng = seed ? seed : 0x243f6a8885a308d3ULL;
	for (unsigned i = 0; i < 2; i++) {
		if (i == 1 && fds[1] == fds[0])
			break;
		r = sim_init_file(s, i);
		if (r < 0) {
			sync_free(io);
			return werr_set(err, r, "simulator snapshot failed");
		}
	}
	*out = io;
	return 0;
}

bool engine_io_sim_lost(const struct engine_io *io)
{
	return io && io->dead;
}
