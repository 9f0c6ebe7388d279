/*
 * engine: the online rekey's crash safety, with the live mapping simulated.
 *
 * The "kernel" is a model in shared memory of what volume/online.c does to
 * device-mapper: the user's mapping (live table [0,a) new | [a,b) through
 * the zone device | [b,size) old, an inactive table, suspended or not) and
 * the zone device (live key, inactive key, suspended or not, exists). Each
 * driver step is one model step. A suspend of the mapping while the zone
 * device holds I/O it routes is a deadlock in the real kernel: the model
 * records it as a failure. Foreground writes go through the model at every
 * step (queued while their sector is held, applied with the key then live
 * when it is released), and the expected plaintext follows them.
 *
 *  - SIGKILL: a forked child runs the online rekey and kills itself at a
 *    random I/O op or driver step; its guardian (a real fork of the engine)
 *    repairs. Then the mapping must not be suspended or hold anything, and
 *    every sector read through it must be the expected plaintext. Then an
 *    online resume finishes, and everything is checked again: every sector
 *    under the new key, the header clean, the table final, no zone device.
 *  - power loss: the simulator backend drops or tears unflushed writes at a
 *    random op; the model is lost with it (a reboot). conv_rekey_prepare_open
 *    (what `wrapctl open` runs in the middle of a rekey) gives the split
 *    boundary, the data must read right through the split table, then an
 *    online resume finishes.
 *
 * WRAPD_CRASH_RUNS (default 20), WRAPD_CRASH_SEED, WRAPD_CRASH_ONLY as in
 * host_engine_crash.
 */
#include "tests/lib/unit.h"
#include "tests/engine/engine_testlib.h"

#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

static char dir[256];
static uint64_t base_seed;
static unsigned runs;
static long only = -1;

#define ZONE (256 * 1024)
#define QMAX 64

enum { K_NONE = -1, K_OLD = 0, K_NEW = 1 };

/* The simulated kernel (shared between the test, the child and its guardian). */
struct simk {
	uint64_t size, seg_off;
	uint32_t ss;
	uint64_t la, lb;            /* live table of the mapping: zone [la,lb) */
	bool n_susp, n_inact;
	uint64_t ia, ib;            /* its inactive table */
	bool z_exists, z_susp;
	int z_live, z_inact;
	bool deadlock;
	bool no_fg;                 /* power-loss runs: no foreground writes */
	uint64_t steps;
	/* foreground */
	uint64_t rng, wseq;
	unsigned nq;
	uint64_t q[QMAX];           /* queued writes: sector positions */
	uint64_t qseq[QMAX];
	pid_t killer;               /* the process that may kill itself */
	uint64_t kill_at, count;    /* shared op counter (I/O ops + steps) */
	uint64_t stop_at;           /* at this op the killer asks for a clean stop */
	bool probe_guardian;        /* the killer looks at its guardian, then dies */
	pid_t guardian;             /* what it saw: the guardian's pid, */
	int guardian_sockets;       /* how many sockets the guardian holds, */
	int killer_sockets;         /* and how many it holds itself */
	uint8_t expect[];           /* expected plaintext of every data byte */
};
static struct simk *K;
static size_t K_len;
static char devpath[300], hdrpath[300];
static struct tkeys *TK;

/* conv_params.stop of the runs that stop at K->stop_at (as SIGINT would). */
static volatile sig_atomic_t stop_flag;

/* Sockets among the open fds of process `pid` (-1: cannot tell). */
static int count_sockets(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char lp[sizeof(path) + sizeof(de->d_name) + 1], target[64];
		snprintf(lp, sizeof(lp), "%s/%s", path, de->d_name);
		ssize_t l = readlink(lp, target, sizeof(target) - 1);
		if (l > 0) {
			target[l] = 0;
			n += strncmp(target, "socket:", 7) == 0;
		}
	}
	closedir(d);
	return n;
}

/* The killer's one child, once the engine has forked it (0 before). The
 * guardian is set up when the fork returns to the run (guardian_start waits
 * for it), so what it holds then is what it keeps. */
static pid_t guardian_of_self(void)
{
	char path[64], buf[64] = "";
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int pid = 0;
	if (fgets(buf, sizeof(buf), f))
		pid = atoi(buf);
	fclose(f);
	return pid;
}

static void count_op(void)
{
	K->count++;
	if (K->probe_guardian && getpid() == K->killer && !K->guardian) {
		pid_t g = guardian_of_self();
		if (g > 0) {
			K->guardian_sockets = count_sockets(g);
			K->killer_sockets = count_sockets(getpid());
			K->guardian = g;
			raise(SIGKILL);
		}
	}
	if (K->stop_at && K->count >= K->stop_at && getpid() == K->killer)
		stop_flag = 1;
	if (K->kill_at && K->count >= K->kill_at && getpid() == K->killer)
		raise(SIGKILL);
}

/* A zone size for one phase of a run: half, once or twice ZONE. */
static uint64_t pick_zone(uint64_t *rng)
{
	return (uint64_t)ZONE / 2 << (t_rand(rng) % 3);
}
static void io_hook(void *arg, uint64_t op)
{
	(void)arg;
	(void)op;
	count_op();
}

/* ---- the model's reads and writes ---------------------------------------------------- */

static int key_at(uint64_t p)
{
	if (p < K->la)
		return K_NEW;
	if (p < K->lb)
		return K->z_live;
	return K_OLD;
}
static bool held_at(uint64_t p)
{
	return K->n_susp || (K->z_susp && p >= K->la && p < K->lb);
}

static void plain_for(uint64_t seq, uint64_t p, uint8_t *buf)
{
	uint64_t s = seq * 0x9e3779b97f4a7c15ull ^ p;
	for (uint32_t i = 0; i < K->ss; i += 8) {
		uint64_t x = t_rand(&s);
		memcpy(buf + i, &x, 8);
	}
}

static void fg_apply(uint64_t p, uint64_t seq)
{
	uint8_t *b = malloc(K->ss);
	plain_for(seq, p, b);
	memcpy(K->expect + p, b, K->ss);
	int k = key_at(p);
	if (t_xts(tk_key(TK, (unsigned)k), 1, b, K->ss, K->ss, p) == 0) {
		int fd = open(devpath, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (pwrite(fd, b, K->ss, (off_t)(K->seg_off + p)) != (ssize_t)K->ss)
				K->deadlock = true; /* flags the run */
			fsync(fd);
			close(fd);
		}
	}
	free(b);
}

/* One foreground write of a random sector: now, or queued while held. */
static void fg_write(void)
{
	if (K->no_fg)
		return;
	uint64_t p = t_rand(&K->rng) % (K->size / K->ss) * K->ss;
	uint64_t seq = ++K->wseq;
	if (held_at(p)) {
		if (K->nq < QMAX) {
			K->q[K->nq] = p;
			K->qseq[K->nq++] = seq;
		}
		return;
	}
	fg_apply(p, seq);
}
static void fg_flush(void)
{
	unsigned keep = 0;
	for (unsigned i = 0; i < K->nq; i++) {
		if (held_at(K->q[i])) {
			K->q[keep] = K->q[i];
			K->qseq[keep++] = K->qseq[i];
		} else {
			fg_apply(K->q[i], K->qseq[i]);
		}
	}
	K->nq = keep;
}

static void step(void)
{
	K->steps++;
	count_op();
	fg_write();
}

/* ---- the driver on the model (volume/online.c's steps) -------------------------------- */

static int s_begin(void *arg, const struct secbuf *o, const struct secbuf *n, unsigned od,
		   unsigned nd, struct werr *err)
{
	(void)arg, (void)o, (void)n, (void)od, (void)nd, (void)err;
	if (!K->z_exists) {
		step();
		K->z_exists = true;
		K->z_live = K_NEW;
		K->z_inact = K_NONE;
	}
	return 0;
}
static void s_susp_name(void)
{
	step();
	if (K->z_susp && K->la < K->lb)
		K->deadlock = true; /* I/O held below a device being suspended */
	K->n_susp = true;
}
static void s_resume_name(void)
{
	step();
	if (K->n_inact) {
		K->la = K->ia;
		K->lb = K->ib;
		K->n_inact = false;
	}
	K->n_susp = false;
	fg_flush();
}
static void s_resume_zone(void)
{
	step();
	if (K->z_inact != K_NONE)
		K->z_live = K->z_inact;
	K->z_inact = K_NONE;
	K->z_susp = false;
	fg_flush();
}
static int s_inspect(void *arg, uint64_t *za, uint64_t *zb, bool *held, struct werr *err)
{
	(void)arg, (void)err;
	*held = false;
	if (K->n_susp) {
		step();
		K->z_inact = K_NONE;
		if (K->z_susp)
			s_resume_zone();
		step();
		K->n_inact = false;
		s_resume_name();
		return 0;
	}
	if (K->n_inact) {
		step();
		K->n_inact = false;
	}
	if (!K->z_susp)
		return 0;
	if (K->la >= K->lb || K->z_inact == K_NEW) {
		s_resume_zone();
		return 0;
	}
	*za = K->la;
	*zb = K->lb;
	*held = true;
	return 0;
}
static int s_hold(void *arg, uint64_t a, uint64_t b, struct werr *err)
{
	(void)arg, (void)err;
	step();
	K->n_inact = true;
	K->ia = a;
	K->ib = b;
	s_susp_name();
	step();
	K->z_susp = true;
	step();
	K->z_inact = K_OLD;
	s_resume_name();
	return 0;
}
static int s_release(void *arg, bool converted, struct werr *err)
{
	(void)arg, (void)err;
	if (converted) {
		step();
		K->z_inact = K_NEW;
	}
	s_resume_zone();
	return 0;
}
static int s_finish(void *arg, struct werr *err)
{
	(void)arg, (void)err;
	step();
	K->n_inact = true;
	K->ia = K->ib = K->size;
	s_susp_name();
	s_resume_name();
	step();
	K->z_exists = false;
	return 0;
}
static const struct conv_online sim_online = {
	.begin = s_begin, .inspect = s_inspect, .hold = s_hold, .release = s_release,
	.finish = s_finish,
};

/* ---- checks --------------------------------------------------------------------------- */

/* Every sector as the mapping serves it now must be the expected plaintext. */
static int check_served(const char *what)
{
	if (K->deadlock)
		return print_message("  %s: a suspend would have deadlocked\n", what), -1;
	if (K->n_susp || K->z_susp || K->nq)
		return print_message("  %s: still suspended or holding %u writes\n", what, K->nq), -1;
	uint8_t *b = t_read_file(devpath, K->seg_off, K->size);
	if (!b)
		return -1;
	int rc = 0;
	for (uint64_t p = 0; p < K->size && !rc; p += K->ss) {
		if (t_xts(tk_key(TK, (unsigned)key_at(p)), 0, b + p, K->ss, K->ss, p) < 0 ||
		    memcmp(b + p, K->expect + p, K->ss)) {
			print_message("  %s: sector at %llu (key %d) reads wrong\n", what,
				      (unsigned long long)p, key_at(p));
			rc = -1;
		}
	}
	free(b);
	return rc;
}

static void reset_kernel(uint64_t done)
{
	K->la = K->lb = done;
	K->n_susp = K->n_inact = K->z_exists = K->z_susp = false;
	K->z_live = K_NEW;
	K->z_inact = K_NONE;
	K->nq = 0;
}

struct vol {
	uint32_t ss;
	bool detached;
	char img[300], hdr[300];
	uint64_t size, seg_off, nops;
	uint8_t *orig;
};
static struct vol vols[3];

static struct conv_params params(struct conv_keyprov *kp, struct vol *v, enum conv_op op,
				 const struct conv_online *on)
{
	struct conv_params p = {.device = devpath, .header = v->detached ? hdrpath : NULL, .op = op,
				.sector_size = v->ss, .tail_is_free = true, .keys = kp,
				.chunk = 64 * 1024, .hotzone = ZONE, .pool = 512 * 1024,
				.workers = 2, .online = on};
	return p;
}

static void lay_out(struct vol *v)
{
	unlink(hdrpath);
	assert_int_equal(t_copy_file(v->img, devpath), 0);
	if (v->detached)
		assert_int_equal(t_copy_file(v->hdr, hdrpath), 0);
	reset_kernel(0);
	K->size = v->size;
	K->seg_off = v->seg_off;
	K->ss = v->ss;
	K->deadlock = false;
	K->no_fg = false;
	K->steps = K->count = K->kill_at = K->stop_at = 0;
	K->wseq = 0;
	memcpy(K->expect, v->orig, v->size);
}

static int setup(void **state)
{
	(void)state;
	if (t_crash_setup("online crash tests", "wrapd-online", &runs, &only, &base_seed, dir,
			  sizeof(dir)) < 0)
		return -1;
	snprintf(devpath, sizeof(devpath), "%s/run.img", dir);
	snprintf(hdrpath, sizeof(hdrpath), "%s/run.hdr", dir);
	K_len = sizeof(struct simk) + 24 * MiB;
	K = mmap(NULL, K_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TK = calloc(1, sizeof(*TK));
	if (K == MAP_FAILED || !TK)
		return -1;
	TK->seed = 7;
	const struct { uint32_t ss; bool det; } kinds[] = {{512, true}, {4096, true}, {4096, false}};
	for (unsigned i = 0; i < ARRAY_SIZE(vols); i++) {
		struct vol *v = &vols[i];
		v->ss = kinds[i].ss;
		v->detached = kinds[i].det;
		snprintf(v->img, sizeof(v->img), "%s/v%u.img", dir, i);
		snprintf(v->hdr, sizeof(v->hdr), "%s/v%u.hdr", dir, i);
		uint64_t fsize = v->detached ? 2 * MiB + 12 * 1024 : 20 * MiB;
		uint8_t *plain = t_random_data(fsize, i + 11);
		if (t_write_file(v->img, plain, fsize) < 0)
			return -1;
		free(plain);
		/* Encrypted with key 0 (the "old" key). */
		struct tkeys tk = {.seed = 7};
		struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
		struct conv_params p = {.device = v->img, .header = v->detached ? v->hdr : NULL,
					.op = CONV_ENCRYPT, .sector_size = v->ss, .tail_is_free = true,
					.keys = &kp};
		struct werr err = {0};
		int rc = conv_run(&p, NULL, &err);
		tk_free(&tk);
		if (rc < 0)
			return print_message("setup: %s\n", werr_str(&err, rc)), -1;
		v->seg_off = v->detached ? 0 : ENGINE_SHIFT;
		v->size = v->detached ? fsize : fsize - ENGINE_SHIFT;
		v->orig = malloc(v->size);
		uint8_t *b = t_read_file(v->img, v->seg_off, v->size);
		if (!b || t_xts(tk_key(TK, 0), 0, b, v->size, v->ss, 0) < 0)
			return -1;
		memcpy(v->orig, b, v->size);
		free(b);
		/* The ops of an uninterrupted online rekey (I/O ops + steps). */
		lay_out(v);
		struct tkeys tk2 = {.seed = 7, .n = 1};
		struct conv_keyprov kp2 = {tk_new_key, tk_unwrap, &tk2};
		struct conv_online on = sim_online;
		on.map_size = v->size;
		on.no_guardian = true;
		struct conv_params p2 = params(&kp2, v, CONV_REKEY, &on);
		struct conv_test_hooks th = {.io_kind = CONV_IO_SYNC, .hook = io_hook, .no_direct = true};
		p2.test = &th;
		rc = conv_run(&p2, NULL, &err);
		tk_free(&tk2);
		if (rc < 0 || check_served("count run") < 0)
			return print_message("count: %s\n", werr_str(&err, rc)), -1;
		v->nops = K->count;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < ARRAY_SIZE(vols); i++)
		free(vols[i].orig);
	tk_free(TK);
	free(TK);
	munmap(K, K_len);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Waits for the guardian: it holds the header's lock until it is done. */
static void wait_guardian(struct vol *v)
{
	(void)v; /* the engine locks the data device (also with a detached header) */
	int fd = open(devpath, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	close(fd);
}

/* Online resume to the end with zone size `zone`, then everything checked. */
static int finish_and_check(struct vol *v, uint64_t zone, struct werr *err)
{
	struct tkeys tk = {.seed = 7, .n = 2};
	struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
	struct conv_online on = sim_online;
	on.map_size = v->size;
	on.no_guardian = true;
	on.zone_size = zone;
	struct conv_params p = params(&kp, v, CONV_RESUME, &on);
	struct conv_test_hooks th = {.io_kind = CONV_IO_SYNC, .no_direct = true};
	p.test = &th;
	int rc = conv_run(&p, NULL, err);
	if (rc == -ENOENT && tk_volume_key(TK, v->detached ? hdrpath : devpath) == tk_key(TK, 0)) {
		/* The crash came before the first commit: start it again. */
		tk.n = 1;
		p.op = CONV_REKEY;
		rc = conv_run(&p, NULL, err);
	} else if (rc == -ENOENT) {
		rc = 0; /* finished before the crash */
	}
	tk_free(&tk);
	if (rc < 0)
		return print_message("  resume: %s\n", werr_str(err, rc)), -1;
	if (!t_hdr_clean(v->detached ? hdrpath : devpath))
		return print_message("  header not clean\n"), -1;
	if (K->la != K->size || K->lb != K->size || K->z_exists)
		return print_message("  table not final (zone [%llu,%llu), zone device %d)\n",
				     (unsigned long long)K->la, (unsigned long long)K->lb,
				     K->z_exists), -1;
	const struct secbuf *k = tk_volume_key(TK, v->detached ? hdrpath : devpath);
	if (k != tk_key(TK, 1))
		return print_message("  the header does not name the new key\n"), -1;
	return check_served("after resume");
}

static void sigkill_runs(void **state)
{
	(void)state;
	unsigned fails = 0, done = 0;
	uint64_t rng = base_seed ^ 0x0411e;
	for (unsigned i = 0; i < runs; i++) {
		struct vol *v = &vols[i % ARRAY_SIZE(vols)];
		uint64_t k = 1 + t_rand(&rng) % v->nops, fseed = t_rand(&rng);
		/* A run stopped cleanly at op s (half of them), then resumed with
		 * another zone size; the kill lands anywhere in either. The
		 * resume after the kill takes a third size. */
		uint64_t s = t_rand(&rng) % 2 ? 1 + t_rand(&rng) % v->nops : 0;
		uint64_t z[3] = {pick_zone(&rng), pick_zone(&rng), pick_zone(&rng)};
		if (s)
			k = 1 + t_rand(&rng) % (2 * v->nops);
		if (only >= 0 && i != (unsigned long)only)
			continue;
		lay_out(v);
		K->rng = fseed;
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			K->killer = getpid();
			K->kill_at = k;
			K->stop_at = s;
			struct tkeys tk = {.seed = 7, .n = 1};
			struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
			struct conv_online on = sim_online;
			on.map_size = v->size;
			on.zone_size = z[0];
			struct conv_params p = params(&kp, v, CONV_REKEY, &on);
			struct conv_test_hooks th = {.io_kind = CONV_IO_SYNC, .hook = io_hook,
						     .no_direct = true};
			p.test = &th;
			p.stop = &stop_flag;
			struct werr err = {0};
			int rc = conv_run(&p, NULL, &err);
			if (rc == -EINTR && s) {
				K->stop_at = 0;
				stop_flag = 0;
				on.zone_size = z[1];
				p.op = CONV_RESUME;
				werr_clear(&err);
				rc = conv_run(&p, NULL, &err);
			}
			_exit(rc < 0 ? 3 : 0);
		}
		int status = 0;
		waitpid(pid, &status, 0);
		wait_guardian(v);
		K->kill_at = 0;
		struct werr err = {0};
		int r1 = check_served("after the kill and the guardian");
		int r2 = r1 < 0 ? -1 : finish_and_check(v, z[2], &err);
		done++;
		if (r1 < 0 || r2 < 0) {
			fails++;
			print_message("FAIL sigkill run %u: ss=%u %s kill at op %llu/%llu, stop at %llu, "
				      "zones %llu/%llu/%llu KiB\n", i, v->ss,
				      v->detached ? "detached" : "attached", (unsigned long long)k,
				      (unsigned long long)v->nops, (unsigned long long)s,
				      (unsigned long long)z[0] >> 10, (unsigned long long)z[1] >> 10,
				      (unsigned long long)z[2] >> 10);
		}
	}
	print_message("online sigkill: %u runs, %u failed (WRAPD_CRASH_SEED=%llu)\n", done, fails,
		      (unsigned long long)base_seed);
	assert_int_equal(fails, 0);
}

/* The guardian closes the sockets of the process it guards (an agent's
 * listeners and connections): killed, the agent must be able to start again
 * while its guardian repairs. The killer holds a listening TCP socket and a
 * socket pair, then dies at the first op after its guardian exists. */
static void guardian_holds_no_socket(void **state)
{
	(void)state;
	struct vol *v = &vols[0];
	lay_out(v);
	K->guardian = 0;
	K->guardian_sockets = K->killer_sockets = -1;
	K->probe_guardian = true;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		K->killer = getpid();
		int l = socket(AF_INET, SOCK_STREAM, 0), sp[2];
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
		    socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
			_exit(4);
		struct tkeys tk = {.seed = 7, .n = 1};
		struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
		struct conv_online on = sim_online;
		on.map_size = v->size;
		struct conv_params p = params(&kp, v, CONV_REKEY, &on);
		struct conv_test_hooks th = {.io_kind = CONV_IO_SYNC, .hook = io_hook, .no_direct = true};
		p.test = &th;
		struct werr err = {0};
		_exit(conv_run(&p, NULL, &err) < 0 ? 3 : 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	K->probe_guardian = false;
	wait_guardian(v);
	print_message("guardian %d: %d socket(s); the run it guarded: %d\n", (int)K->guardian,
		      K->guardian_sockets, K->killer_sockets);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_true(K->guardian > 0);
	assert_true(K->killer_sockets >= 3);
	assert_int_equal(K->guardian_sockets, 0);
	struct werr err = {0};
	assert_int_equal(check_served("after the kill and the guardian"), 0);
	assert_int_equal(finish_and_check(v, 0, &err), 0);
}

/* After a power loss: what `wrapctl open` does in the middle of a rekey. */
static int reopen(struct vol *v, struct werr *err)
{
	struct luks2_device dv = LUKS2_DEVICE_INIT;
	int rc = luks2_device_open(&dv, devpath, v->detached ? hdrpath : NULL,
				   LUKS2_DEV_READ | LUKS2_DEV_WRITE | LUKS2_DEV_LOCK_EX, err);
	uint64_t d = 0;
	unsigned od, nd;
	if (rc == 0)
		rc = conv_rekey_prepare_open(&dv, tk_key(TK, 0), tk_key(TK, 1), &d, &od, &nd, err);
	luks2_device_close(&dv);
	if (rc == -EOPNOTSUPP) /* no rekey in progress: before the first commit, or after the last */
		return 0;
	if (rc < 0)
		return rc;
	reset_kernel(d);
	return 1;
}

static void powerloss_runs(void **state)
{
	(void)state;
	unsigned fails = 0, done = 0;
	uint64_t rng = base_seed ^ 0x5bd1e995;
	for (unsigned i = 0; i < runs; i++) {
		struct vol *v = &vols[i % ARRAY_SIZE(vols)];
		uint64_t k = 1 + t_rand(&rng) % v->nops, simseed = t_rand(&rng);
		/* Half of the runs: a run stopped cleanly at op s, then the power
		 * loss in its resume with another zone size. */
		uint64_t s = t_rand(&rng) % 2 ? 1 + t_rand(&rng) % v->nops : 0;
		uint64_t z[3] = {pick_zone(&rng), pick_zone(&rng), pick_zone(&rng)};
		if (only >= 0 && i != (unsigned long)only)
			continue;
		lay_out(v);
		K->rng = 0; /* no foreground writes: nothing acknowledged is lost */
		struct tkeys tk = {.seed = 7, .n = 1};
		struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
		struct conv_online on = sim_online;
		on.map_size = v->size;
		on.no_guardian = true;
		on.zone_size = z[0];
		struct conv_params p = params(&kp, v, CONV_REKEY, &on);
		struct conv_test_hooks th = {.io_kind = CONV_IO_SIM, .sim_loss_at = k,
					     .sim_seed = simseed, .no_direct = true};
		p.test = &th;
		struct werr err = {0};
		K->no_fg = true;
		int rc = 0;
		if (s) {
			struct conv_test_hooks t1 = {.io_kind = CONV_IO_SYNC, .hook = io_hook,
						     .no_direct = true};
			p.test = &t1;
			p.stop = &stop_flag;
			K->killer = getpid();
			K->stop_at = s;
			rc = conv_run(&p, NULL, &err);
			K->stop_at = 0;
			stop_flag = 0;
			p.test = &th;
			p.stop = NULL;
			p.op = CONV_RESUME;
			on.zone_size = z[1];
		}
		if (!s || rc == -EINTR)
			(void)conv_run(&p, NULL, &err);
		tk_free(&tk);
		K->no_fg = false;
		/* The reboot: no kernel state; open builds the split table. */
		int r0 = reopen(v, &err);
		if (r0 == 0) {
			/* No rekey in progress: not started, or finished. */
			const struct secbuf *hk = tk_volume_key(TK, v->detached ? hdrpath : devpath);
			reset_kernel(hk == tk_key(TK, 1) ? v->size : 0);
		}
		r0 = r0 < 0 ? r0 : 0;
		int r1 = r0 < 0 ? -1 : check_served("after the power loss and open");
		int r2 = r1 < 0 ? -1 : finish_and_check(v, z[2], &err);
		done++;
		if (r0 < 0 || r1 < 0 || r2 < 0) {
			fails++;
			print_message("FAIL powerloss run %u: ss=%u %s loss at op %llu/%llu, stop at %llu, "
				      "zones %llu/%llu/%llu KiB: %s\n", i, v->ss,
				      v->detached ? "detached" : "attached", (unsigned long long)k,
				      (unsigned long long)v->nops, (unsigned long long)s,
				      (unsigned long long)z[0] >> 10, (unsigned long long)z[1] >> 10,
				      (unsigned long long)z[2] >> 10, r0 < 0 ? werr_str(&err, r0) : "");
		}
	}
	print_message("online powerloss: %u runs, %u failed (WRAPD_CRASH_SEED=%llu)\n", done, fails,
		      (unsigned long long)base_seed);
	assert_int_equal(fails, 0);
}

/* A conversion of another kind in progress: refused online, nothing moved. */
static void refusal_other_conversion(void **state)
{
	(void)state;
	struct vol *v = &vols[0];
	lay_out(v);
	struct tkeys tk = {.seed = 7, .n = 1};
	struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
	struct conv_params p = params(&kp, v, CONV_DECRYPT, NULL);
	struct conv_test_hooks th = {.io_kind = CONV_IO_SIM, .sim_loss_at = 40, .sim_seed = 3,
				     .no_direct = true};
	p.test = &th;
	struct werr err = {0};
	(void)conv_run(&p, NULL, &err);
	enum conv_op op;
	assert_int_equal(conv_status(devpath, hdrpath, &op, &err), 0);
	assert_int_equal(op, CONV_DECRYPT);
	uint8_t *before = t_read_file(devpath, 0, v->size);
	struct conv_online on = sim_online;
	on.map_size = v->size;
	on.no_guardian = true;
	for (int i = 0; i < 2; i++) {
		struct conv_params q = params(&kp, v, i ? CONV_REKEY : CONV_RESUME, &on);
		struct conv_test_hooks t2 = {.io_kind = CONV_IO_SYNC, .no_direct = true};
		q.test = &t2;
		werr_clear(&err);
		int rc = conv_run(&q, NULL, &err);
		print_message("online %s with a decrypt in progress: %s\n", i ? "rekey" : "resume",
			      werr_str(&err, rc));
		assert_int_equal(rc, -EBUSY);
		assert_non_null(strstr(werr_str(&err, rc), "decrypt"));
	}
	assert_int_equal(K->steps, 0);
	uint8_t *after = t_read_file(devpath, 0, v->size);
	assert_memory_equal(before, after, v->size);
	free(before);
	free(after);
	tk_free(&tk);
}

/* --max-rate: the limiter waits before each zone until the bytes moved fit
 * the rate, so a whole run takes at least (size - one zone) / rate. */
static void rate_limit(void **state)
{
	(void)state;
	struct vol *v = &vols[1];
	lay_out(v);
	struct tkeys tk = {.seed = 7, .n = 1};
	struct conv_keyprov kp = {tk_new_key, tk_unwrap, &tk};
	struct conv_online on = sim_online;
	on.map_size = v->size;
	on.no_guardian = true;
	on.max_rate = 4 * MiB;
	struct conv_params p = params(&kp, v, CONV_REKEY, &on);
	struct conv_test_hooks th = {.io_kind = CONV_IO_SYNC, .no_direct = true};
	p.test = &th;
	struct werr err = {0};
	struct conv_result r = {0};
	assert_int_equal(conv_run(&p, &r, &err), 0);
	double floor_s = (double)(v->size - ZONE) / (double)on.max_rate;
	print_message("rate limit 4 MiB/s: %.2f s for %llu bytes (at least %.2f s)\n", r.seconds,
		      (unsigned long long)v->size, floor_s);
	assert_true(r.seconds >= floor_s);
	/* The run's hold figures: one per zone. */
	assert_int_equal(r.zone_size, ZONE);
	assert_int_equal(r.zones, (v->size + ZONE - 1) / ZONE);
	assert_true(r.hold_mean_s > 0 && r.hold_max_s >= r.hold_mean_s);
	assert_int_equal(check_served("rate-limited run"), 0);
	tk_free(&tk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refusal_other_conversion),
		cmocka_unit_test(rate_limit),
		cmocka_unit_test(guardian_holds_no_socket),
		cmocka_unit_test(sigkill_runs),
		cmocka_unit_test(powerloss_runs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
