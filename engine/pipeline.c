/*
 * engine: the data pipeline. One thread drives the I/O backend (reads ahead,
 * writes behind); worker threads run AES-XTS (and the journal hashes) in the
 * middle. Writes of a hotzone start only after the checkpoint callback has
 * made the record naming that hotzone durable.
 */
#include "engine/internal.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

enum slot_state { SL_FREE = 0, SL_READING, SL_XFORM, SL_READY, SL_WRITING };

struct slot {
	uint8_t *buf;
	enum slot_state state;
	uint64_t chunk;       /* chunk index */
	uint64_t pos, len;    /* data positions */
	int res;              /* worker result */
};

struct pipe;

struct worker {
	pthread_t th;
	struct pipe *p;
	bool started;
};

struct pipe {
	const struct engine_run *run;
	struct slot *slots;
	unsigned nslots;
	uint8_t *mem;
	size_t memlen;
	uint64_t nchunks, nhz, K;
	uint64_t *xf_count;       /* per hotzone: chunks transformed */
	uint64_t *hashes[2];      /* per hotzone parity */
	uint64_t hz_hash_n;       /* capacity of each hashes array */
	/* work queue */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned *q;              /* slot indexes to transform (ring) */
	unsigned qh, qt, qn;
	unsigned *dq;             /* transformed slot indexes */
	unsigned dn;
	bool quit;
	int evfd;
	struct worker *workers;
	unsigned nworkers;
	int worker_err;
	struct werr *err;
	/* the I/O thread's loop */
	struct loop {
		uint64_t next_read, written;   /* chunks */
		int64_t ckpt_hz;               /* last checkpointed hotzone, -1 none */
		unsigned inflight_io, inflight_xf;
		int first_err;
		bool stopping, finished;
	} L;
};

static uint64_t chunk_pos(const struct pipe *p, uint64_t i, uint64_t *len)
{
	const struct engine_run *r = p->run;
	uint64_t C = r->chunk, a, b;
	if (!r->descending) {
		a = r->start + i * C;
		b = a + C < r->end ? a + C : r->end;
	} else {
		b = r->end - i * C;
		a = b - r->start > C ? b - C : r->start;
	}
	*len = b - a;
	return a;
}

static void hz_range(const struct pipe *p, uint64_t h, uint64_t *a, uint64_t *b)
{
	const struct engine_run *r = p->run;
	uint64_t first = h * p->K, last = (h + 1) * p->K;
	if (last > p->nchunks)
		last = p->nchunks;
	uint64_t l1, l2;
	uint64_t p1 = chunk_pos(p, first, &l1), p2 = chunk_pos(p, last - 1, &l2);
	if (!r->descending) {
		*a = p1;
		*b = p2 + l2;
	} else {
		*a = p2;
		*b = p1 + l1;
	}
}

static uint64_t hz_chunks_upto(const struct pipe *p, uint64_t h)
{
	/* chunks in hotzones 0..h */
	uint64_t n = (h + 1) * p->K;
	return n < p->nchunks ? n : p->nchunks;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipe *p = w->p;
	const struct engine_run *r = p->run;
	struct xts_key oldk = {0}, newk = {0};
	int kerr = 0;
	if (r->xform == ENGINE_XF_REKEY || r->xform == ENGINE_XF_DECRYPT)
		kerr = xts_key_init(&oldk, r->old_vk, false);
	if (!kerr && (r->xform == ENGINE_XF_REKEY || r->xform == ENGINE_XF_ENCRYPT))
		kerr = xts_key_init(&newk, r->new_vk, true);
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->quit && p->qn == 0)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->quit && p->qn == 0) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		unsigned si = p->q[p->qh];
		p->qh = (p->qh + 1) % p->nslots;
		p->qn--;
		pthread_mutex_unlock(&p->mu);

		struct slot *s = &p->slots[si];
		int res = kerr;
		if (!res && r->hash_old) {
			uint64_t a, b;
			uint64_t h = s->chunk / p->K;
			hz_range(p, h, &a, &b);
			uint64_t *hs = p->hashes[h & 1] + (s->pos - a) / 512;
			for (uint64_t o = 0; o < s->len; o += 512)
				hs[o / 512] = engine_jhash512(r->hash_key, r->hash_seed, s->buf + o);
		}
		if (!res) {
			uint64_t iv = s->pos / 512;
			switch (r->xform) {
			case ENGINE_XF_ENCRYPT:
				res = xts_crypt(&newk, true, s->buf, s->len, r->sector_size, iv);
				break;
			case ENGINE_XF_REKEY:
				res = xts_crypt(&oldk, false, s->buf, s->len, r->sector_size, iv);
				if (!res)
					res = xts_crypt(&newk, true, s->buf, s->len, r->sector_size, iv);
				break;
			case ENGINE_XF_DECRYPT:
				res = xts_crypt(&oldk, false, s->buf, s->len, r->sector_size, iv);
				break;
			case ENGINE_XF_COPY:
				break;
			}
		}
		s->res = res;
		pthread_mutex_lock(&p->mu);
		p->dq[p->dn++] = si;
		pthread_mutex_unlock(&p->mu);
		uint64_t one = 1;
		ssize_t wr = write(p->evfd, &one, sizeof(one));
		(void)wr;
	}
	xts_key_free(&oldk);
	xts_key_free(&newk);
	return NULL;
}

static void pipe_destroy(struct pipe *p)
{
	if (p->workers) {
		pthread_mutex_lock(&p->mu);
		p->quit = true;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->nworkers; i++)
			if (p->workers[i].started)
				pthread_join(p->workers[i].th, NULL);
		free(p->workers);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	if (p->mem) {
		/* Plaintext passed through these buffers: wipe before release. */
		explicit_bzero(p->mem, p->memlen);
		munmap(p->mem, p->memlen);
	}
	free(p->slots);
	free(p->q);
	free(p->dq);
	free(p->xf_count);
	/* Journal hashes of old (possibly plain) content: wiped too. */
	for (int i = 0; i < 2; i++) {
		if (p->hashes[i])
			explicit_bzero(p->hashes[i], p->hz_hash_n * sizeof(uint64_t));
		free(p->hashes[i]);
	}
}

/* Fills in the defaults; -EINVAL for a misaligned run. */
static int run_defaults(struct engine_run *R, struct werr *err)
{
	if (!R->chunk)
		R->chunk = 1024 * 1024;
	if (!R->pool)
		R->pool = 32 * 1024 * 1024;
	if (!R->hotzone)
		R->hotzone = 16 * 1024 * 1024;
	if (!R->workers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		R->workers = n > 0 ? (unsigned)n : 1;
		if (R->workers > 16)
			R->workers = 16;
	}
	if (R->sector_size < 512 || (R->sector_size & (R->sector_size - 1)) ||
	    R->chunk % R->sector_size || R->start % R->sector_size || R->end % R->sector_size ||
	    R->end < R->start)
		return werr_set(err, -EINVAL, "engine: misaligned run");
	if (R->hotzone < R->chunk)
		R->hotzone = R->chunk;
	R->hotzone -= R->hotzone % R->chunk;
	return 0;
}

/* Buffers (wiped and unmapped by pipe_destroy), queues, hash arrays. */
static int pipe_alloc(struct pipe *p, struct werr *err)
{
	const struct engine_run *R = p->run;
	p->nchunks = (R->end - R->start + R->chunk - 1) / R->chunk;
	p->K = R->hotzone / R->chunk;
	p->nhz = (p->nchunks + p->K - 1) / p->K;
	uint64_t ns = R->pool / R->chunk;
	if (ns < 2)
		ns = 2;
	if (R->hash_old && ns < p->K + 2)
		ns = p->K + 2;
	if (ns > p->nchunks)
		ns = p->nchunks;
	p->nslots = (unsigned)ns;
	p->memlen = (size_t)ns * R->chunk;
	p->mem = mmap(NULL, p->memlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->mem == MAP_FAILED) {
		p->mem = NULL;
		return werr_set(err, -ENOMEM, "engine: cannot allocate %zu bytes of buffers", p->memlen);
	}
	(void)madvise(p->mem, p->memlen, MADV_DONTDUMP);
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	p->q = calloc(p->nslots, sizeof(*p->q));
	p->dq = calloc(p->nslots, sizeof(*p->dq));
	p->xf_count = calloc(p->nhz, sizeof(*p->xf_count));
	if (!p->slots || !p->q || !p->dq || !p->xf_count)
		return -ENOMEM;
	if (R->hash_old) {
		p->hz_hash_n = R->hotzone / 512;
		for (int i = 0; i < 2; i++)
			if (!(p->hashes[i] = calloc(p->hz_hash_n, sizeof(uint64_t))))
				return -ENOMEM;
	}
	for (unsigned i = 0; i < p->nslots; i++)
		p->slots[i].buf = p->mem + (size_t)i * R->chunk;
	return 0;
}

static int pipe_register(struct pipe *p)
{
	struct iovec *iov = calloc(p->nslots, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (unsigned i = 0; i < p->nslots; i++) {
		iov[i].iov_base = p->slots[i].buf;
		iov[i].iov_len = p->run->chunk;
	}
	int rc = p->run->io->ops->bufs_register(p->run->io, iov, p->nslots);
	free(iov);
	return rc;
}

static int pipe_start_workers(struct pipe *p)
{
	p->evfd = p->run->io->evfd;
	p->nworkers = p->run->workers;
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	if (!p->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < p->nworkers; i++) {
		p->workers[i].p = p;
		if (pthread_create(&p->workers[i].th, NULL, worker_main, &p->workers[i]) != 0)
			return -EAGAIN;
		p->workers[i].started = true;
	}
	return 0;
}

/* ---- the loop ------------------------------------------------------------------- */

/* Checkpoints the next hotzone when its turn has come: the previous one is
 * written (and fsynced here), and with journaling all its hashes are in. */
static void loop_checkpoint(struct pipe *p)
{
	const struct engine_run *R = p->run;
	struct loop *L = &p->L;
	if (L->first_err || L->stopping || L->ckpt_hz + 1 >= (int64_t)p->nhz)
		return;
	uint64_t h = (uint64_t)(L->ckpt_hz + 1);
	bool prev_done = h == 0 || L->written == hz_chunks_upto(p, h - 1);
	uint64_t hz_n = hz_chunks_upto(p, h) - h * p->K;
	bool ready = !R->hash_old || p->xf_count[h] == hz_n;
	if (!prev_done || !ready)
		return;
	uint64_t a, b;
	hz_range(p, h, &a, &b);
	int r = 0;
	if (h > 0)
		r = R->io->ops->fsync(R->io, R->dst_file);
	struct engine_hotzone hz = {.start = a, .end = b,
				    .hashes = R->hash_old ? p->hashes[h & 1] : NULL};
	if (!r && R->checkpoint)
		r = R->checkpoint(R->cb_arg, R->descending ? b : a, &hz);
	if (r < 0) {
		L->first_err = r;
		if (!p->err || p->err->rc != r || !p->err->msg[0]) /* keep the checkpoint's own line */
			werr_set(p->err, r, "checkpoint failed: %s", strerror(-r));
	} else {
		L->ckpt_hz = (int64_t)h;
	}
}

/* Reads ahead into free slots; writes behind, for checkpointed hotzones. */
static void loop_submit(struct pipe *p)
{
	const struct engine_run *R = p->run;
	struct loop *L = &p->L;
	for (unsigned i = 0; i < p->nslots && !L->first_err && L->next_read < p->nchunks; i++) {
		if (L->stopping && (int64_t)(L->next_read / p->K) > L->ckpt_hz)
			break;
		struct slot *s = &p->slots[i];
		if (s->state != SL_FREE)
			continue;
		s->chunk = L->next_read;
		s->pos = chunk_pos(p, L->next_read, &s->len);
		int r = R->io->ops->read(R->io, R->src_file, i, s->buf, s->len, R->src_base + s->pos, i);
		if (r < 0) {
			L->first_err = werr_set(p->err, r, "read failed: %s", strerror(-r));
			break;
		}
		s->state = SL_READING;
		L->inflight_io++;
		L->next_read++;
	}
	for (unsigned i = 0; i < p->nslots && !L->first_err; i++) {
		struct slot *s = &p->slots[i];
		if (s->state != SL_READY || (int64_t)(s->chunk / p->K) > L->ckpt_hz)
			continue;
		int r = R->io->ops->write(R->io, R->dst_file, i, s->buf, s->len, R->dst_base + s->pos, i);
		if (r < 0) {
			L->first_err = werr_set(p->err, r, "write failed: %s", strerror(-r));
			break;
		}
		s->state = SL_WRITING;
		L->inflight_io++;
	}
}

static void queue_xform(struct pipe *p, unsigned si)
{
	pthread_mutex_lock(&p->mu);
	p->q[p->qt] = si;
	p->qt = (p->qt + 1) % p->nslots;
	p->qn++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* One I/O completion: a read goes to the workers, a write frees its slot. */
static void loop_complete(struct pipe *p, const struct engine_io_cqe *cqe)
{
	const struct engine_run *R = p->run;
	struct loop *L = &p->L;
	struct slot *s = &p->slots[cqe->tag];
	L->inflight_io--;
	int res = cqe->res;
	if (res >= 0 && (uint64_t)res != s->len)
		res = -EIO;
	if (s->state == SL_READING) {
		if (res < 0) {
			if (!L->first_err)
				L->first_err = werr_set(p->err, res, "read failed at byte %llu: %s",
							(unsigned long long)(R->src_base + s->pos),
							strerror(-res));
			s->state = SL_FREE;
			return;
		}
		s->state = SL_XFORM;
		L->inflight_xf++;
		queue_xform(p, (unsigned)cqe->tag);
	} else if (s->state == SL_WRITING) {
		if (res < 0 && !L->first_err)
			L->first_err = werr_set(p->err, res, "write failed at byte %llu: %s",
						(unsigned long long)(R->dst_base + s->pos),
						strerror(-res));
		s->state = SL_FREE;
		if (res >= 0) {
			L->written++;
			if (R->progress)
				R->progress(R->cb_arg, s->len);
		}
	}
}

/* Collects transformed chunks (the eventfd only wakes us up; a stale count
 * costs one spurious wake-up, never a lost one). */
static void loop_collect(struct pipe *p)
{
	struct loop *L = &p->L;
	pthread_mutex_lock(&p->mu);
	unsigned dn = p->dn;
	unsigned dq[dn ? dn : 1];
	memcpy(dq, p->dq, dn * sizeof(unsigned));
	p->dn = 0;
	pthread_mutex_unlock(&p->mu);
	for (unsigned k = 0; k < dn; k++) {
		struct slot *s = &p->slots[dq[k]];
		L->inflight_xf--;
		if (s->res < 0) {
			if (!L->first_err)
				L->first_err = werr_set(p->err, s->res,
							"cipher failed (is the key valid for AES-XTS?)");
			s->state = SL_FREE;
			continue;
		}
		s->state = SL_READY;
		p->xf_count[s->chunk / p->K]++;
	}
}

/* The loop: returns when everything is written (L->finished), on an error,
 * or when stopping and the checkpointed hotzones are written. */
static void pipe_loop(struct pipe *p)
{
	const struct engine_run *R = p->run;
	struct loop *L = &p->L;
	struct engine_io_cqe cqes[64];
	for (;;) {
		if (!L->stopping && R->stop && *R->stop)
			L->stopping = true;
		loop_checkpoint(p);
		loop_submit(p);
		if (!L->first_err && L->written == p->nchunks) {
			L->finished = true;
			return;
		}
		if (!L->inflight_io && !L->inflight_xf) {
			if (L->first_err)
				return;
			/* Stopping: drop read-ahead of uncheckpointed hotzones. */
			if (L->stopping &&
			    (L->ckpt_hz < 0 || L->written == hz_chunks_upto(p, (uint64_t)L->ckpt_hz)))
				return;
		}
		bool block = L->inflight_io || L->inflight_xf;
		unsigned n = 0;
		int r = R->io->ops->wait(R->io, block, cqes, ARRAY_SIZE(cqes), &n);
		if (r < 0) {
			if (!L->first_err)
				L->first_err = werr_set(p->err, r, "I/O wait failed: %s", strerror(-r));
			return; /* cannot go on waiting safely */
		}
		for (unsigned k = 0; k < n; k++)
			loop_complete(p, &cqes[k]);
		loop_collect(p);
		if (L->first_err && !L->inflight_io && !L->inflight_xf)
			return;
	}
}

/* After the loop: the final (or, when stopped, the last written) checkpoint. */
static int pipe_end(struct pipe *p)
{
	const struct engine_run *R = p->run;
	struct loop *L = &p->L;
	int rc;
	if (L->first_err)
		return L->first_err;
	if (L->finished) {
		rc = R->io->ops->fsync(R->io, R->dst_file);
		if (rc < 0)
			return werr_set(p->err, rc, "flush failed: %s", strerror(-rc));
		return R->checkpoint ? R->checkpoint(R->cb_arg, R->descending ? R->start : R->end, NULL)
				     : 0;
	}
	/* Stopped: the checkpointed hotzones are all written. */
	rc = 0;
	if (L->ckpt_hz >= 0) {
		uint64_t a, b;
		hz_range(p, (uint64_t)L->ckpt_hz, &a, &b);
		rc = R->io->ops->fsync(R->io, R->dst_file);
		if (!rc && R->checkpoint)
			rc = R->checkpoint(R->cb_arg, R->descending ? a : b, NULL);
	}
	return rc ? rc : -EINTR;
}

int engine_run(const struct engine_run *run_in, struct werr *err)
{
	struct engine_run R = *run_in;
	int rc = run_defaults(&R, err);
	if (rc < 0)
		return rc;
	if (R.start == R.end)
		return R.checkpoint ? R.checkpoint(R.cb_arg, R.descending ? R.start : R.end, NULL) : 0;

	struct pipe P = {.run = &R, .evfd = -1, .err = err, .L = {.ckpt_hz = -1}};
	struct pipe *p = &P;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	rc = pipe_alloc(p, err);
	if (rc == 0 && (rc = pipe_register(p)) == 0) {
		rc = pipe_start_workers(p);
		if (rc == 0) {
			pipe_loop(p);
			rc = pipe_end(p);
		}
		R.io->ops->bufs_unregister(R.io);
	}
	pipe_destroy(p);
	return rc;
}
