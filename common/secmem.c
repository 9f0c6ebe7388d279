/*
 * secbuf: memory for volume keys. Locked so it never reaches swap, excluded
 * from core dumps, and wiped before it is returned to the kernel.
 */
#include "common/common.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

static size_t round_page(size_t n)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t p = page > 0 ? (size_t)page : 4096;
	return (n + p - 1) / p * p;
}

int secbuf_alloc(struct secbuf *buf, size_t cap)
{
	buf->data = NULL;
	buf->len = buf->cap = 0;
	size_t sz = round_page(cap ? cap : 1);
	void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* The raw syscall, because AddressSanitizer turns mlock() into a no-op
	 * and sanitizer builds must still keep keys out of swap. */
	if (syscall(SYS_mlock, p, sz) < 0) {
		int rc = -errno;
		munmap(p, sz);
		return rc;
	}
	/* Best effort on old kernels: failure to exclude from dumps is not fatal
	 * for correctness, but the mlock above is. */
	(void)madvise(p, sz, MADV_DONTDUMP);
	buf->data = p;
	buf->cap = sz;
	return 0;
}

void secbuf_free(struct secbuf *buf)
{
	if (!buf || !buf->data)
		return;
	explicit_bzero(buf->data, buf->cap);
	syscall(SYS_munlock, buf->data, buf->cap);
	munmap(buf->data, buf->cap);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

int secbuf_reserve(struct secbuf *buf, size_t cap)
{
	if (buf->data && cap <= buf->cap)
		return 0;
	struct secbuf n;
	size_t want = buf->cap ? buf->cap : 4096;
	while (want < cap)
		want *= 2;
	int rc = secbuf_alloc(&n, want);
	if (rc < 0)
		return rc;
	if (buf->data) {
		memcpy(n.data, buf->data, buf->len);
		n.len = buf->len;
		secbuf_free(buf);
	}
	*buf = n;
	return 0;
}

int secbuf_append(struct secbuf *buf, const void *src, size_t n)
{
	if (n > SIZE_MAX - buf->len)
		return -EOVERFLOW;
	int rc = secbuf_reserve(buf, buf->len + n);
	if (rc < 0)
		return rc;
	memcpy(buf->data + buf->len, src, n);
	buf->len += n;
	return 0;
}

int secmem_harden_process(void)
{
	struct rlimit no = {0, 0};
	int rc = 0;
	if (setrlimit(RLIMIT_CORE, &no) < 0)
		rc = -errno;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		rc = -errno;
	return rc;
}

/* Raw syscalls: AddressSanitizer turns mlockall() into a no-op. */
int secmem_lock_all(void)
{
	return syscall(SYS_mlockall, MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0 ? -errno : 0;
}

int secmem_lock_end(void)
{
	return syscall(SYS_mlockall, MCL_CURRENT | MCL_ONFAULT) < 0 ? -errno : 0;
}
