/*
 * bench/convert-bench FILE: the conversion engine's throughput on FILE (a
 * regular file or block device holding plaintext, >= 1 GiB, last 17 MiB
 * free), with the cipher on and off, against an in-place dd copy. One
 * process runs the whole sequence so the VKs it makes stay in its locked
 * memory:
 *   encrypt (cipher off) -> decrypt (cipher off) -> encrypt -> rekey (off)
 *   -> rekey -> decrypt ... timing each, plus dd. Run by bench/convert.
 * The data ends up garbage (cipher-off steps do not match the keys); only
 * the figures matter.
 */
#include <fcntl.h>
#include <openssl/rand.h>
#include <time.h>

#include "engine/engine.h"
#include "format/format.h"

struct keys {
	struct secbuf vk[8];
	unsigned n;
};

static int new_key(void *arg, const char *uuid, struct secbuf *vk, struct wrapd_token *tok,
		   struct werr *err)
{
	struct keys *k = arg;
	if (k->n >= 8 || secbuf_alloc(&k->vk[k->n], 64) < 0 || secbuf_alloc(vk, 64) < 0)
		return -ENOMEM;
	if (RAND_bytes(k->vk[k->n].data, 64) != 1)
		return -EIO;
	k->vk[k->n].len = 64;
	if (secbuf_append(vk, k->vk[k->n].data, 64) < 0)
		return -ENOMEM;
	char ct[40];
	snprintf(ct, sizeof(ct), "vault:v1:bench-%u", k->n++);
	tok->vault_addr = strdup("");
	tok->vault_namespace = strdup("");
	tok->vault_mount = strdup("transit");
	tok->vault_key = strdup("wrapd");
	tok->key_version = 1;
	tok->ciphertext = strdup(ct);
	tok->context = strdup("YmVuY2g=");
	return 0;
}

static int unwrap(void *arg, const struct wrapd_token *tok, struct secbuf *vk, struct werr *err)
{
	struct keys *k = arg;
	unsigned i;
	if (sscanf(tok->ciphertext, "vault:v1:bench-%u", &i) != 1 || i >= k->n)
		return -ENOKEY;
	if (secbuf_alloc(vk, 64) < 0 || secbuf_append(vk, k->vk[i].data, 64) < 0)
		return -ENOMEM;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double conv(const char *file, struct keys *k, enum conv_op op, bool off)
{
	struct conv_keyprov kp = {new_key, unwrap, k};
	struct conv_params p = {.device = file, .op = op, .tail_is_free = true, .keys = &kp,
				.cipher_off = off};
	/* Knobs for exploring the pipeline's shape (MiB); the defaults are the
	 * engine's own, which is what the figures report. */
	const char *chunk = getenv("WRAPD_BENCH_CHUNK_MIB"), *pool = getenv("WRAPD_BENCH_POOL_MIB");
	if (chunk)
		p.chunk = (size_t)strtoul(chunk, NULL, 10) << 20;
	if (pool)
		p.pool = (size_t)strtoul(pool, NULL, 10) << 20;
	struct conv_result r;
	struct werr err = {0};
	int rc = conv_run(&p, &r, &err);
	if (rc < 0) {
		fprintf(stderr, "convert-bench: %s%s: %s\n", conv_op_name(op), off ? " (cipher off)" : "",
			werr_str(&err, rc));
		exit(1);
	}
	return (double)r.bytes / r.seconds / 1048576.0;
}

static double dd(const char *file, uint64_t size)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "dd if='%s' of='%s' bs=4M count=%llu iflag=direct oflag=direct conv=notrunc status=none",
		 file, file, (unsigned long long)(size / (4 << 20)));
	double t = now_s();
	if (system(cmd) != 0) {
		fprintf(stderr, "convert-bench: dd failed\n");
		exit(1);
	}
	return (double)(size / (4 << 20)) * 4.0 / (now_s() - t);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: convert-bench FILE\n");
		return 2;
	}
	const char *f = argv[1];
	int fd = open(f, O_RDONLY);
	uint64_t size = 0;
	if (fd < 0 || fd_size(fd, &size) < 0) {
		perror(f);
		return 1;
	}
	close(fd);
	uint64_t data = size - ENGINE_TAIL_NEEDED;
	struct keys k = {0};
	double enc_io = conv(f, &k, CONV_ENCRYPT, true);
	double dec_io = conv(f, &k, CONV_DECRYPT, true);
	double dd1 = dd(f, data);
	double enc = conv(f, &k, CONV_ENCRYPT, false);
	double rek_io = conv(f, &k, CONV_REKEY, true);
	double rek = conv(f, &k, CONV_REKEY, false);
	double dd2 = dd(f, data);
	double dec = conv(f, &k, CONV_DECRYPT, false);
	double ddm = (dd1 + dd2) / 2;
	printf("data=%llu MiB cpus=%ld\n", (unsigned long long)(data >> 20), sysconf(_SC_NPROCESSORS_ONLN));
	printf("dd_inplace_mib_s=%.0f (runs %.0f %.0f)\n", ddm, dd1, dd2);
	printf("encrypt_mib_s=%.0f encrypt_io_mib_s=%.0f encrypt_vs_io=%.2f encrypt_vs_dd=%.2f\n", enc,
	       enc_io, enc / enc_io, enc / ddm);
	printf("rekey_mib_s=%.0f rekey_io_mib_s=%.0f rekey_vs_io=%.2f rekey_vs_dd=%.2f\n", rek, rek_io,
	       rek / rek_io, rek / ddm);
	printf("decrypt_mib_s=%.0f decrypt_io_mib_s=%.0f decrypt_vs_io=%.2f decrypt_vs_dd=%.2f\n", dec,
	       dec_io, dec / dec_io, dec / ddm);
	for (unsigned i = 0; i < k.n; i++)
		secbuf_free(&k.vk[i]);
	return 0;
}
