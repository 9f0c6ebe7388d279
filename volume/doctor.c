/*
 * doctor: one line per thing wrapd needs from the host and from Vault, each
 * with a hint to fix it. Read-only except for a throwaway keyring key.
 */
#include "volume/internal.h"
#include "keyring/keyring.h"

#include <fcntl.h>
#include <linux/keyctl.h>
#include <liburing.h>
#include <openssl/rand.h>
#include <sys/timex.h>
#include <sys/utsname.h>
#include <time.h>

const char *volume_check_state_str(enum volume_check_state s)
{
	switch (s) {
	case CHECK_OK:
		return "ok";
	case CHECK_WARN:
		return "warn";
	case CHECK_FAIL:
		return "FAIL";
	case CHECK_SKIP:
		return "skip";
	}
	return "?";
}

#define SET(c, st, ...) do { (c)->state = (st); snprintf((c)->detail, sizeof((c)->detail), __VA_ARGS__); } while (0)
#define HINT(c, ...) snprintf((c)->hint, sizeof((c)->hint), __VA_ARGS__)

static bool exists(const char *p) { return access(p, F_OK) == 0; }

static bool module_available(const char *release, const char *ko)
{
	char p[300];
	snprintf(p, sizeof(p), "/lib/modules/%s/modules.dep", release);
	_cleanup_free_ char *dep = NULL;
	if (read_file(p, 64u << 20, &dep, NULL) < 0)
		return false;
	return strstr(dep, ko) != NULL;
}

static void check_dm(struct volume_check *c)
{
	struct utsname u;
	uname(&u);
	c->name = "dm-crypt";
	bool dm = volume_dm_present();
	bool crypt = exists("/sys/module/dm_crypt");
	if (dm && crypt) {
		SET(c, CHECK_OK, "device-mapper and dm-crypt loaded (kernel %s)", u.release);
	} else if (module_available(u.release, "/dm-crypt.ko")) {
		SET(c, CHECK_OK, "dm-crypt loadable as a module (kernel %s)", u.release);
		HINT(c, "it loads on first use; 'modprobe dm-crypt' to load it now");
	} else if (dm) {
		SET(c, CHECK_WARN, "device-mapper present, dm-crypt not loaded and no module found");
		HINT(c, "'modprobe dm-crypt'; if that fails the kernel lacks CONFIG_DM_CRYPT");
	} else {
		SET(c, CHECK_FAIL, "kernel %s has no device-mapper and no dm-crypt module", u.release);
		HINT(c, "boot a kernel with CONFIG_BLK_DEV_DM and CONFIG_DM_CRYPT (tests: tests/vm/vm-run)");
	}
}

static void check_keyring(struct volume_check *c)
{
	c->name = "keyring";
	uint8_t junk[32];
	if (RAND_bytes(junk, sizeof(junk)) != 1)
		memset(junk, 0x5a, sizeof(junk));
	char desc[64];
	snprintf(desc, sizeof(desc), "wrapd:doctor-%ld", (long)getpid());
	struct keyring_key k = KEYRING_KEY_NONE;
	struct werr e;
	werr_clear(&e);
	int r = keyring_add_logon(desc, junk, sizeof(junk), KEY_SPEC_THREAD_KEYRING, &k, &e);
	explicit_bzero(junk, sizeof(junk));
	if (r < 0) {
		SET(c, CHECK_FAIL, "cannot add a logon key: %s", werr_str(&e, r));
		HINT(c, "needs CONFIG_KEYS; in a container, allow the add_key/keyctl syscalls (seccomp)");
		return;
	}
	int rr = keyring_remove(&k);
	if (rr < 0)
		SET(c, CHECK_WARN, "logon key added but not removed: %s", strerror(-rr));
	else
		SET(c, CHECK_OK, "logon keys can be added to the thread keyring and removed");
}

static void check_uring(struct volume_check *c)
{
	c->name = "io_uring";
	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);
	if (r < 0) {
		char v[16] = "";
		_cleanup_close_ int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && read(fd, v, sizeof(v) - 1) > 0 && v[0] != '0')
			HINT(c, "sysctl kernel.io_uring_disabled=%c; set it to 0 (only in-place conversion needs it)", v[0]);
		else
			HINT(c, "needs Linux >= 5.6 with io_uring allowed by seccomp (only in-place conversion needs it)");
		SET(c, CHECK_WARN, "io_uring unavailable: %s", strerror(-r));
		return;
	}
	io_uring_queue_exit(&ring);
	SET(c, CHECK_OK, "io_uring works");
}

static void check_mapper(struct volume_check *c)
{
	c->name = "/dev/mapper";
	bool dm = volume_dm_present();
	if (exists("/dev/mapper/control") && dm)
		SET(c, CHECK_OK, "/dev/mapper/control present");
	else if (exists("/dev/mapper/control")) {
		SET(c, CHECK_FAIL, "/dev/mapper/control exists but the kernel has no device-mapper");
		HINT(c, "a stale node (libdevmapper makes it on first use); load dm-mod");
	} else if (dm) {
		SET(c, CHECK_WARN, "/dev/mapper/control missing though device-mapper is loaded");
		HINT(c, "'dmsetup mknodes' creates it; in a container, bind-mount /dev/mapper");
	} else {
		SET(c, CHECK_FAIL, "/dev/mapper/control missing: no device-mapper");
		HINT(c, "load dm-mod ('modprobe dm-mod')");
	}
}

static void check_udev(const struct volume_ctx *ctx, struct volume_check *c)
{
	c->name = "udev";
	bool running = exists("/run/udev/control");
	if (ctx->udev == 0)
		SET(c, CHECK_OK, "udev sync off by request: wrapd creates /dev/mapper nodes itself");
	else if (running)
		SET(c, CHECK_OK, "udev running: libdevmapper syncs with it");
	else {
		SET(c, CHECK_OK, "no udev: wrapd creates and removes /dev/mapper nodes itself");
		HINT(c, "fine in containers and minimal hosts; /dev/disk/by-* links will not appear");
	}
}

static void check_clock(struct volume_check *c)
{
	c->name = "clock";
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	if (tm.tm_year + 1900 < 2024) {
		SET(c, CHECK_FAIL, "system time is %04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
		HINT(c, "set the clock (chrony/systemd-timesyncd): TLS certificates and Vault tokens depend on it");
		return;
	}
	struct timex tx;
	memset(&tx, 0, sizeof(tx));
	int st = adjtimex(&tx);
	if (st == TIME_ERROR || (tx.status & STA_UNSYNC)) {
		SET(c, CHECK_WARN, "not synchronised by NTP (UTC %04d-%02d-%02d %02d:%02d)",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
		HINT(c, "enable chrony or systemd-timesyncd: TLS and token TTLs depend on the time");
	} else {
		SET(c, CHECK_OK, "synchronised (offset %ld us)", tx.offset);
	}
}

static void check_vault(const struct volume_ctx *ctx, struct volume_check *c, size_t *k, size_t cap)
{
	struct volume_check *reach = &c[(*k)++];
	reach->name = "vault";
	if (!ctx->vc) {
		SET(reach, CHECK_FAIL, "no Vault client configured");
		HINT(reach, "set VAULT_ADDR and VAULT_TOKEN, or vault_addr in /etc/wrapd/wrapd.conf");
		return;
	}
	struct werr e;
	werr_clear(&e);
	struct vault_health h;
	int r = vault_health(ctx->vc, &h, &e);
	if (r < 0) {
		SET(reach, CHECK_FAIL, "unreachable: %s", werr_str(&e, r));
		HINT(reach, "check VAULT_ADDR, the network path and TLS (VAULT_CACERT)");
		return;
	}
	if (h.sealed || !h.initialized) {
		SET(reach, CHECK_FAIL, "reachable but %s (status %ld, version %s)",
		    h.sealed ? "sealed" : "not initialised", h.status, h.version);
		HINT(reach, "unseal Vault ('vault operator unseal')");
		return;
	}
	SET(reach, CHECK_OK, "reachable, unsealed, %s (version %s)", h.standby ? "standby" : "active",
	    h.version);

	if (*k >= cap)
		return;
	struct volume_check *auth = &c[(*k)++];
	auth->name = "vault auth";
	struct vault_token_info ti;
	werr_clear(&e);
	r = vault_token_lookup(ctx->vc, &ti, &e);
	if (r < 0) {
		SET(auth, CHECK_FAIL, "%s", werr_str(&e, r));
		HINT(auth, "check VAULT_TOKEN / the token file, or the Kubernetes/AppRole role");
		return;
	}
	SET(auth, CHECK_OK, "authenticated (%s, policies %.200s, ttl %llds)", ti.auth_method,
	    ti.policies, ti.ttl);

	if (*k >= cap)
		return;
	struct volume_check *key = &c[(*k)++];
	key->name = "transit key";
	struct vault_key_info ki;
	werr_clear(&e);
	r = vault_key_info(ctx->vc, &ki, &e);
	const char *mount = ctx->vcfg && ctx->vcfg->mount ? ctx->vcfg->mount : VAULT_DEFAULT_MOUNT;
	const char *kname = ctx->vcfg && ctx->vcfg->key ? ctx->vcfg->key : VAULT_DEFAULT_KEY;
	if (r < 0) {
		SET(key, CHECK_FAIL, "%s/keys/%s: %s", mount, kname, werr_str(&e, r));
		HINT(key, "the policy needs read on %s/keys/%s", mount, kname);
	} else if (!ki.exists) {
		SET(key, CHECK_FAIL, "%s/keys/%s does not exist", mount, kname);
		HINT(key, "vault write -f %s/keys/%s derived=true", mount, kname);
	} else if (!ki.derived) {
		SET(key, CHECK_FAIL, "%s/keys/%s is not derived: contexts would bind nothing", mount, kname);
		HINT(key, "create a new key with derived=true and rewrap onto it");
	} else {
		SET(key, CHECK_OK, "%s/keys/%s: %s, derived, latest v%u, min decryption v%u", mount,
		    kname, ki.type, ki.latest_version, ki.min_decryption_version);
	}
}

int volume_doctor(const struct volume_ctx *ctx, struct volume_check *checks, size_t cap)
{
	if (cap < 9)
		return -ENOBUFS;
	size_t k = 0;
	memset(checks, 0, cap * sizeof(*checks));
	check_dm(&checks[k++]);
	check_mapper(&checks[k++]);
	check_keyring(&checks[k++]);
	check_uring(&checks[k++]);
	check_udev(ctx, &checks[k++]);
	check_clock(&checks[k++]);
	check_vault(ctx, checks, &k, cap);
	return (int)k;
}
