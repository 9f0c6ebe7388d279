/*
 * "Is this device in use?": one scan of mounts, holders, loop devices and
 * exclusive openers, for a block device (and each of its partitions) or a
 * regular file. Each user is named, so the error line can say who holds it
 * and what to do.
 */
#include "blockdev/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

static inline void closedirp_(DIR **d) { if (*d) closedir(*d); }

static int read_devt(const char *path, dev_t *out)
{
	char v[32];
	unsigned ma, mi;
	if (read_first_line(path, v, sizeof(v)) < 0 || sscanf(v, "%u:%u", &ma, &mi) != 2)
		return -ENOENT;
	*out = makedev(ma, mi);
	return 0;
}

int bdev_devname(dev_t dev, char **out)
{
	char p[64];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/uevent", major(dev), minor(dev));
	_cleanup_free_ char *buf = NULL;
	int r = read_file(p, 65536, &buf, NULL);
	if (r < 0)
		return r;
	for (char *l = buf; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(l, "DEVNAME=", 8)) {
			if (strstr(l + 8, ".."))
				return -EINVAL;
			if (asprintf(out, "/dev/%s", l + 8) < 0)
				return -ENOMEM;
			return 0;
		}
		l = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

/* ---- loop devices ------------------------------------------------------------ */

/* Backing identity of bound loop device kname: asked by LOOP_GET_STATUS64
 * when /dev/kname opens, else from sysfs (backing_file + offset). */
static int loop_identity(const char *kname, dev_t *bdev, ino_t *ino, dev_t *brdev,
			 uint64_t *off)
{
	char p[300];
	snprintf(p, sizeof(p), "/dev/%s", kname);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct loop_info64 li;
	memset(&li, 0, sizeof(li));
	if (fd >= 0 && ioctl(fd, LOOP_GET_STATUS64, &li) == 0) {
		*bdev = (dev_t)li.lo_device;
		*ino = (ino_t)li.lo_inode;
		*brdev = (dev_t)li.lo_rdevice;
		*off = li.lo_offset;
		return 0;
	}
	char bf[PATH_MAX + 16], v[32];
	snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", kname);
	if (read_first_line(p, bf, sizeof(bf)) < 0)
		return -ENOENT;
	struct stat bst;
	if (stat(bf, &bst) < 0)
		return -ENOENT; /* e.g. "... (deleted)": not an inode anyone can name */
	*bdev = bst.st_dev;
	*ino = bst.st_ino;
	*brdev = S_ISBLK(bst.st_mode) ? bst.st_rdev : 0;
	*off = 0;
	snprintf(p, sizeof(p), "/sys/block/%s/loop/offset", kname);
	if (read_first_line(p, v, sizeof(v)) == 0 && parse_u64(v, off) < 0)
		*off = 0;
	return 0;
}

int bdev_loops_backed_by(const struct stat *st, struct bdev_loop *out, size_t cap, size_t *n)
{
	*n = 0;
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
		return 0;
	_cleanup_(closedirp_) DIR *d = opendir("/sys/block");
	if (!d)
		return 0; /* no sysfs: no loop devices we could ask */
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4) || strlen(de->d_name) >= sizeof(out->kname))
			continue;
		char p[300];
		snprintf(p, sizeof(p), "/sys/block/%s/loop", de->d_name);
		if (access(p, F_OK) < 0)
			continue; /* not bound to anything */
		dev_t bdev = 0, brdev = 0;
		ino_t ino = 0;
		uint64_t off = 0;
		if (loop_identity(de->d_name, &bdev, &ino, &brdev, &off) < 0)
			continue;
		bool match = S_ISREG(st->st_mode) ? bdev == st->st_dev && ino == st->st_ino
						  : brdev != 0 && brdev == st->st_rdev;
		if (!match)
			continue;
		if (*n < cap) {
			struct bdev_loop *l = &out[*n];
			memset(l, 0, sizeof(*l));
			snprintf(l->kname, sizeof(l->kname), "%s", de->d_name);
			snprintf(l->dev, sizeof(l->dev), "/dev/%s", de->d_name);
			l->offset = off;
			snprintf(p, sizeof(p), "/sys/block/%s/dev", de->d_name);
			(void)read_devt(p, &l->rdev);
		}
		(*n)++;
	}
	return 0;
}

/* ---- the scan ------------------------------------------------------------------ */

/* What to look for: the device and its partitions (block), or the file. */
#define SCAN_DEVS_MAX 65
struct scan {
	const struct stat *st;
	size_t ndev;
	dev_t dev[SCAN_DEVS_MAX];       /* [0] = the device itself */
	char kname[SCAN_DEVS_MAX][40];  /* sysfs names */
	struct bdev_usage *u;
};

static struct bdev_use *use_add(struct scan *s, enum bdev_use_kind kind, size_t di)
{
	struct bdev_usage *u = s->u;
	if (u->n == BDEV_USES_MAX) {
		u->more = true;
		return NULL;
	}
	struct bdev_use *x = &u->use[u->n++];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	if (di > 0)
		snprintf(x->part, sizeof(x->part), "/dev/%s", s->kname[di]);
	return x;
}

static void partitions(struct scan *s)
{
	char p[300];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u", major(s->dev[0]), minor(s->dev[0]));
	_cleanup_(closedirp_) DIR *d = opendir(p);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && s->ndev < SCAN_DEVS_MAX) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(s->kname[0]))
			continue;
		char q[600];
		snprintf(q, sizeof(q), "%s/%s/partition", p, de->d_name);
		if (access(q, F_OK) < 0)
			continue;
		snprintf(q, sizeof(q), "%s/%s/dev", p, de->d_name);
		if (read_devt(q, &s->dev[s->ndev]) < 0)
			continue;
		snprintf(s->kname[s->ndev], sizeof(s->kname[0]), "%s", de->d_name);
		s->ndev++;
	}
}

/* Names of the holders of dev (dm-3 -> "pgdata" from dm/name). */
static void holders_of(dev_t dev, void (*fn)(void *, const char *, const char *), void *arg)
{
	char p[300];
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/holders", major(dev), minor(dev));
	_cleanup_(closedirp_) DIR *d = opendir(p);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char q[600], name[256] = "";
		snprintf(q, sizeof(q), "/sys/class/block/%s/dm/name", de->d_name);
		(void)read_first_line(q, name, sizeof(name));
		fn(arg, de->d_name, name);
	}
}

struct holder_ctx {
	struct scan *s;
	size_t di;
};

static void holder_found(void *arg, const char *kname, const char *dmname)
{
	struct holder_ctx *h = arg;
	struct bdev_use *x = use_add(h->s, BDEV_USE_HOLDER, h->di);
	if (!x)
		return;
	snprintf(x->who, sizeof(x->who), "%s", kname);
	snprintf(x->label, sizeof(x->label), "%s", dmname);
	snprintf(x->text, sizeof(x->text), "%s%sheld by %s%s%s%s", x->part, x->part[0] ? " " : "",
		 kname, dmname[0] ? " (" : "", dmname, dmname[0] ? ")" : "");
}

/* Decodes mountinfo's \ooo escapes in place. */
static void unescape(char *s)
{
	char *o = s;
	for (char *i = s; *i;) {
		if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' &&
		    i[3] >= '0' && i[3] <= '7') {
			*o++ = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
			i += 4;
		} else {
			*o++ = *i++;
		}
	}
	*o = '\0';
}

bool bdev_mountinfo_parse(char *line, dev_t *dev, char **mnt, char **source)
{
	line[strcspn(line, "\n")] = '\0';
	/* id parent major:minor root mount-point options [optional...] - fstype source superopts */
	char *f[6], *save = NULL, *t;
	for (int i = 0; i < 6; i++)
		if (!(f[i] = strtok_r(i ? NULL : line, " ", &save)))
			return false;
	unsigned ma, mi;
	if (sscanf(f[2], "%u:%u", &ma, &mi) != 2)
		return false;
	*dev = makedev(ma, mi);
	*mnt = f[4];
	unescape(*mnt);
	/* Optional fields, then " - fstype source superopts". */
	*source = NULL;
	while ((t = strtok_r(NULL, " ", &save)))
		if (!strcmp(t, "-"))
			break;
	if (t && strtok_r(NULL, " ", &save) && (t = strtok_r(NULL, " ", &save))) {
		unescape(t);
		*source = t;
	}
	return true;
}

/* Index into s->dev of the device a mount is on: by the device number of
 * mountinfo, or (btrfs and others report an anonymous one) by the mount
 * source when it is a /dev node. -1 when none of ours. */
static int mount_dev_index(const struct scan *s, dev_t dev, const char *source)
{
	for (size_t i = 0; i < s->ndev; i++)
		if (s->dev[i] == dev)
			return (int)i;
	struct stat st;
	if (!source || strncmp(source, "/dev/", 5) || stat(source, &st) < 0 || !S_ISBLK(st.st_mode))
		return -1;
	for (size_t i = 0; i < s->ndev; i++)
		if (s->dev[i] == st.st_rdev)
			return (int)i;
	return -1;
}

static void mounts(struct scan *s)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char line[8192];
	while (fgets(line, sizeof(line), f)) {
		dev_t dev;
		char *mnt, *src;
		if (!bdev_mountinfo_parse(line, &dev, &mnt, &src))
			continue;
		int di = mount_dev_index(s, dev, src);
		if (di < 0)
			continue;
		struct bdev_use *x = use_add(s, BDEV_USE_MOUNT, (size_t)di);
		if (!x)
			return;
		snprintf(x->who, sizeof(x->who), "%s", mnt);
		snprintf(x->text, sizeof(x->text), "%s%smounted at %s", x->part, x->part[0] ? " " : "",
			 mnt);
	}
}

static int scan_run(const struct stat *st, int fd, bool excl_held, struct bdev_usage *u,
		    unsigned depth);

/* What uses a loop device itself: its mounts and holders, as a phrase. */
static void loop_users(const struct bdev_loop *l, char *buf, size_t n)
{
	buf[0] = '\0';
	struct stat lst = {.st_mode = S_IFBLK, .st_rdev = l->rdev};
	struct bdev_usage lu;
	/* depth 1: its mounts and holders, not loops stacked on it */
	if (!l->rdev || scan_run(&lst, -1, true, &lu, 1) < 0)
		return;
	size_t o = 0;
	for (size_t i = 0; i < lu.n && lu.use[i].kind != BDEV_USE_LOOP; i++) {
		int w = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", lu.use[i].text);
		if (w < 0 || (size_t)w >= n - o)
			break;
		o += (size_t)w;
	}
}

static void loops(struct scan *s, unsigned depth)
{
	struct bdev_loop l[BDEV_USES_MAX];
	size_t nl = 0;
	for (size_t di = 0; di < (S_ISBLK(s->st->st_mode) ? s->ndev : 1); di++) {
		struct stat t = *s->st;
		if (S_ISBLK(t.st_mode))
			t.st_rdev = s->dev[di];
		if (bdev_loops_backed_by(&t, l, ARRAY_SIZE(l), &nl) < 0)
			continue;
		for (size_t i = 0; i < nl && i < ARRAY_SIZE(l); i++) {
			struct bdev_use *x = use_add(s, BDEV_USE_LOOP, di);
			if (!x)
				return;
			snprintf(x->who, sizeof(x->who), "%.255s", l[i].dev);
			x->offset = l[i].offset;
			if (depth == 0)
				loop_users(&l[i], x->label, sizeof(x->label));
			snprintf(x->text, sizeof(x->text), "%s%sheld by loop device %.200s (backed at offset %llu%s%s)",
				 x->part, x->part[0] ? " " : "", l[i].dev, (unsigned long long)l[i].offset,
				 x->label[0] ? "; it is " : "", x->label);
		}
		if (nl > ARRAY_SIZE(l))
			s->u->more = true;
	}
}

static int scan_run(const struct stat *st, int fd, bool excl_held, struct bdev_usage *u,
		    unsigned depth)
{
	memset(u, 0, sizeof(*u));
	if (!S_ISBLK(st->st_mode) && !S_ISREG(st->st_mode))
		return -ENOTBLK;
	struct scan s = {.st = st, .u = u};
	if (S_ISREG(st->st_mode)) {
		loops(&s, depth); /* a file's only kernel users */
		return 0;
	}
	s.dev[0] = st->st_rdev;
	snprintf(s.kname[0], sizeof(s.kname[0]), "%u:%u", major(st->st_rdev), minor(st->st_rdev));
	s.ndev = 1;
	partitions(&s);
	mounts(&s);
	for (size_t i = 0; i < s.ndev; i++) {
		struct holder_ctx h = {&s, i};
		holders_of(s.dev[i], holder_found, &h);
	}
	if (depth == 0)
		loops(&s, depth);
	if (!excl_held && fd >= 0 && u->n == 0) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		int x = open(p, O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK);
		if (x >= 0) {
			close(x);
		} else if (errno == EBUSY) {
			struct bdev_use *e = use_add(&s, BDEV_USE_EXCL, 0);
			if (e)
				snprintf(e->text, sizeof(e->text),
					 "opened exclusively by another program (mkfs, cryptsetup, wrapctl, ...)");
		}
	}
	return 0;
}

int bdev_usage_scan(const struct stat *st, int fd, bool excl_held, struct bdev_usage *u)
{
	return scan_run(st, fd, excl_held, u, 0);
}

/* What to do about the first user. */
static void advice(const struct bdev_use *x, char *buf, size_t n)
{
	switch (x->kind) {
	case BDEV_USE_MOUNT:
		snprintf(buf, n, "unmount it first (umount %s)", x->who);
		break;
	case BDEV_USE_HOLDER:
		if (x->label[0])
			snprintf(buf, n, "close the mapping first (wrapctl close %s, or dmsetup remove %s)",
				 x->label, x->label);
		else
			snprintf(buf, n, "stop what holds it first (see /sys/class/block/%s)", x->who);
		break;
	case BDEV_USE_LOOP:
		if (x->label[0])
			snprintf(buf, n, "close what uses %s first (it is %s), then detach it (losetup -d %s)",
				 x->who, x->label, x->who);
		else
			snprintf(buf, n, "detach it first (losetup -d %s)", x->who);
		break;
	default:
		snprintf(buf, n, "wait for that program to finish, or stop it");
		break;
	}
}

int bdev_usage_err(const char *path, const struct bdev_usage *u, struct werr *err)
{
	if (!u->n)
		return 0;
	char list[WERR_MSG_MAX], what[1024];
	size_t o = 0;
	for (size_t i = 0; i < u->n; i++) {
		int w = snprintf(list + o, sizeof(list) - o, "%s%s", i ? "; " : "", u->use[i].text);
		if (w < 0 || (size_t)w >= sizeof(list) - o)
			break;
		o += (size_t)w;
	}
	if (u->more && o + 16 < sizeof(list))
		snprintf(list + o, sizeof(list) - o, "; and more");
	advice(&u->use[0], what, sizeof(what));
	return werr_set(err, -EBUSY, "%s: in use: %s; %s", path, list, what);
}

int bdev_check_unused(const struct bdev *b, struct werr *err)
{
	struct bdev_usage u;
	bool excl_held = (b->flags & BDEV_EXCL) && S_ISBLK(b->st.st_mode);
	int r = bdev_usage_scan(&b->st, b->fd, excl_held, &u);
	if (r < 0)
		return werr_set(err, r, "%s: cannot tell whether it is in use: %s", b->path,
				strerror(-r));
	return bdev_usage_err(b->path, &u, err);
}
