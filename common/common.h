/*
 * common: the small helpers every wrapd module shares.
 *
 * It owns: cleanup attributes, the error-message carrier (struct werr),
 * locked "secure" memory for key material (struct secbuf), Base64, full-length
 * file I/O, leveled logging to a caller-owned sink (struct wlog), and the
 * byte-order helpers for on-disk integers.
 * Nothing here holds global state; every function works on what it is given.
 */
#ifndef WRAPD_COMMON_H
#define WRAPD_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(fn) __attribute__((cleanup(fn)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _must_check_ __attribute__((warn_unused_result))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

/*
 * Error carrier. Functions return 0 or a negative errno; when they fail they
 * may also write one human line into a caller-provided werr, so the CLI can
 * print something that names the device and says what to do.
 */
#define WERR_MSG_MAX 1024
struct werr {
	int rc;
	char msg[WERR_MSG_MAX];
};

/* Sets the message (if err is non-NULL) and returns rc, so callers can write
 * `return werr_set(err, -EINVAL, "...")`. rc must be negative. */
int werr_set(struct werr *err, int rc, const char *fmt, ...) _printf_(3, 4);
/* Prepends "prefix: " to an existing message, keeping rc. Returns err->rc or rc. */
int werr_prefix(struct werr *err, int rc, const char *fmt, ...) _printf_(3, 4);
void werr_clear(struct werr *err);
/* The message, or strerror(-rc) when none was set. */
const char *werr_str(const struct werr *err, int rc);

/*
 * Secure memory for key material: mmap'ed, mlock'ed, MADV_DONTDUMP, wiped with
 * explicit_bzero and unmapped on free. len is the used length, cap the size.
 */
struct secbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
int secbuf_alloc(struct secbuf *buf, size_t cap) _must_check_;
/* Grows (copying through locked memory, wiping the old region). */
int secbuf_reserve(struct secbuf *buf, size_t cap) _must_check_;
int secbuf_append(struct secbuf *buf, const void *src, size_t n) _must_check_;
void secbuf_free(struct secbuf *buf);
/*
 * First thing in every program's main: no core dumps (RLIMIT_CORE 0) and
 * not dumpable (PR_SET_DUMPABLE 0: no core even through a core_pattern
 * pipe, no ptrace or /proc/PID/mem by other users), so a crash or a gcore
 * while keys are in memory writes no key to disk. 0 or a negative errno.
 */
int secmem_harden_process(void);
/*
 * Locks every page of the process as it is touched, now and later
 * (mlockall MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT), for memory whose
 * allocation we do not control (OpenSSL's key schedules). secmem_lock_end
 * stops locking new mappings and unlocks nothing (munlockall would unlock
 * every secbuf too). 0 or a negative errno.
 */
int secmem_lock_all(void);
int secmem_lock_end(void);
static inline void secbuf_freep(struct secbuf *b) { secbuf_free(b); }
#define _cleanup_secbuf_ _cleanup_(secbuf_freep)

/* Base64 (standard alphabet, with padding). b64_encode returns a malloc'ed
 * NUL-terminated string. b64_decode writes at most cap bytes; -EINVAL on bad
 * input, -ENOBUFS when cap is too small. */
int b64_encode(const void *src, size_t n, char **out) _must_check_;
int b64_decode(const char *src, size_t srclen, uint8_t *out, size_t cap, size_t *outlen) _must_check_;
/* Decodes into a fresh secbuf: for plaintext keys arriving in Base64. */
int b64_decode_secure(const char *src, size_t srclen, struct secbuf *out) _must_check_;

/* pread/pwrite until done; -EIO on a short read at EOF. */
int read_full_at(int fd, void *buf, size_t n, off_t off) _must_check_;
/* The first line of a small file such as a sysfs attribute, newline removed; n >= 1. */
int read_first_line(const char *path, char *buf, size_t n);
int write_full_at(int fd, const void *buf, size_t n, off_t off) _must_check_;
/* Reads a whole (small, < max) file into a NUL-terminated malloc'ed buffer. */
int read_file(const char *path, size_t max, char **out, size_t *outlen) _must_check_;
/* The same, from an open fd (read from its current offset). */
int read_file_fd(int fd, size_t max, char **out, size_t *outlen) _must_check_;
/*
 * StrictModes (as sshd's) for files that decide where keys go: wrapd.conf,
 * the Vault token and AppRole secret-id files, the volume table. The file must
 * be owned by root (or by the effective uid, for a process not running as
 * root) and not writable by group or others, and so must every directory
 * above it (both along the path as given and along its resolved form), except
 * that a root-owned sticky directory (/tmp) may be writable by others. -EPERM
 * with one line naming the file (or directory) and the fix ("chown root:root
 * F && chmod go-w F"). Also used for the Vault TLS files (CA, client cert
 * and key).
 */
struct stat;
int file_check_trusted(const struct stat *st, const char *path, struct werr *err) _must_check_;
/* Writes a file atomically (temp + fsync + rename) with the given mode. */
int write_file_atomic(const char *path, const void *data, size_t n, mode_t mode) _must_check_;
/* Parses a decimal uint64 with no sign, spaces or trailing junk. */
int parse_u64(const char *s, uint64_t *out) _must_check_;
/* Size of a block device or regular file, in bytes. */
int fd_size(int fd, uint64_t *out) _must_check_;

/* Leveled logging to a sink the caller owns. Never pass key material. */
enum wlog_level { WLOG_ERROR = 0, WLOG_WARN, WLOG_INFO, WLOG_DEBUG };
struct wlog {
	FILE *out;            /* NULL means stderr */
	enum wlog_level level;
	const char *prog;     /* prefix, e.g. "wrapctl" */
};
void wlog(const struct wlog *log, enum wlog_level lvl, const char *fmt, ...) _printf_(3, 4);
/* Whatever the sink's level (-q): for the few warnings that must never be
 * silenced, such as TLS verification being off. */
void wlog_always(const struct wlog *log, enum wlog_level lvl, const char *fmt, ...) _printf_(3, 4);
#define wlog_error(l, ...) wlog((l), WLOG_ERROR, __VA_ARGS__)
#define wlog_warn(l, ...) wlog((l), WLOG_WARN, __VA_ARGS__)
#define wlog_info(l, ...) wlog((l), WLOG_INFO, __VA_ARGS__)
#define wlog_debug(l, ...) wlog((l), WLOG_DEBUG, __VA_ARGS__)

/*
 * A Vault path part: a Transit mount ("transit", "kv/transit"; allow_slash)
 * or a key name. 1-128 characters of letters, digits, '-', '_', '.', and with
 * allow_slash inner single '/' between segments; no "." or ".." segment.
 * The config file and the header's wrapd-vault token both use it, so a
 * header cannot steer a request to another Vault path ("../../sys/seal").
 */
bool vault_valid_path_part(const char *s, bool allow_slash);
/* Copies src (may be NULL) into dst, each byte outside printable ASCII
 * replaced by '?', truncated to cap - 1; for strings from headers, Vault or
 * the Kubernetes API on their way to a terminal or a log. */
void str_printable(char *dst, size_t cap, const char *src);

/* Byte order of on-disk integers (unaligned; any host byte order). */
static inline uint16_t be16_load(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32_load(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64_load(const uint8_t *p)
{
	return (uint64_t)be32_load(p) << 32 | be32_load(p + 4);
}
static inline void be64_store(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline uint32_t le32_load(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64_load(const uint8_t *p)
{
	return le32_load(p) | (uint64_t)le32_load(p + 4) << 32;
}
static inline void le64_store(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Constant-time comparison: 0 when equal. */
int ct_memcmp(const void *a, const void *b, size_t n);

#endif
