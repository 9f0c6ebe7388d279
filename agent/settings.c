/* The agent's keys of wrapd.conf and the status socket's client side (see
 * agent/settings.h). */
#include "agent/settings.h"
#include "kube/kube.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

static const char *const log_formats[] = {"text", "json", NULL};
/* yes/no as the contract writes them, and the parser's booleans; an odd
 * index is "on" (agent_settings_on). */
static const char *const yes_no[] = {"no", "yes", "false", "true", NULL};
static const char *const volume_modes[] = {"Filesystem", "Block", NULL};
static const char *const reclaim_policies[] = {"Delete", "Retain", NULL};

/* Kubernetes names, checked where the file is read (kube/ has the rules). */
static bool check_subdomain(const char *key, const char *v, char *why, size_t n)
{
	if (!*v || kube_dns1123_subdomain(v))
		return true;
	snprintf(why, n, "%s '%s' must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)",
		 key, v);
	return false;
}

static bool check_label(const char *key, const char *v, char *why, size_t n)
{
	if (kube_dns1123_label(v))
		return true;
	snprintf(why, n, "%s '%s' must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
		 key, v);
	return false;
}

static bool check_fs_type(const char *key, const char *v, char *why, size_t n)
{
	bool ok = *v && strlen(v) <= 16;
	for (const char *c = v; *c; c++)
		ok = ok && ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'));
	if (!ok)
		snprintf(why, n, "%s '%s' must be a file system type such as ext4 or xfs", key, v);
	return ok;
}

static bool check_url(const char *key, const char *v, char *why, size_t n)
{
	if (!*v || !strncmp(v, "https://", 8) || !strncmp(v, "http://", 7))
		return true;
	snprintf(why, n, "%s '%s' must be an https:// URL (http:// only to a loopback address)", key, v);
	return false;
}

#define S(f) offsetof(struct agent_settings, f)
static const struct config_key agent_keys[] = {
	{.name = "status_socket", .type = CONFIG_PATH, .off = S(status_socket)},
	{.name = "metrics_listen", .type = CONFIG_STRING, .off = S(metrics_listen),
	 .flags = CONFIG_EMPTY_OK},
	{.name = "log_format", .type = CONFIG_ENUM, .off = S(log_format), .names = log_formats},
	{.name = "agent_retry_min", .type = CONFIG_DURATION, .off = S(retry_min_ms),
	 .min = 10, .max = 3600 * 1000LL},
	{.name = "agent_retry_max", .type = CONFIG_DURATION, .off = S(retry_max_ms),
	 .min = 100, .max = 24 * 3600 * 1000LL},
	{.name = "agent_stop_timeout", .type = CONFIG_DURATION, .off = S(stop_timeout_ms),
	 .min = 100, .max = 60 * 1000LL},
	{.name = "rekey_max_rate", .type = CONFIG_INT, .off = S(rekey_max_rate), .min = 0,
	 .max = 1 << 20},
	/* Kubernetes mode (the contract: notes/KUBE-CONTRACT.md, daemonset/) */
	{.name = "kubernetes", .type = CONFIG_ENUM, .off = S(kubernetes), .names = yes_no},
	{.name = "discovery_dir", .type = CONFIG_PATH, .off = S(discovery_dir)},
	{.name = "kubelet_dir", .type = CONFIG_PATH, .off = S(kubelet_dir)},
	{.name = "storage_class", .type = CONFIG_STRING, .off = S(storage_class),
	 .check = check_subdomain},
	{.name = "node_name", .type = CONFIG_STRING, .off = S(node_name), .flags = CONFIG_EMPTY_OK,
	 .check = check_subdomain},
	{.name = "kube_api_url", .type = CONFIG_STRING, .off = S(kube_api_url),
	 .flags = CONFIG_EMPTY_OK, .check = check_url},
	{.name = "kube_token_file", .type = CONFIG_PATH, .off = S(kube_token_file)},
	{.name = "kube_ca_file", .type = CONFIG_PATH, .off = S(kube_ca_file)},
	{.name = "convert_existing", .type = CONFIG_ENUM, .off = S(convert_existing),
	 .names = yes_no},
	{.name = "volume_mode", .type = CONFIG_ENUM, .off = S(volume_mode), .names = volume_modes},
	{.name = "fs_type", .type = CONFIG_STRING, .off = S(fs_type), .check = check_fs_type},
	{.name = "reclaim_policy", .type = CONFIG_ENUM, .off = S(reclaim_policy),
	 .names = reclaim_policies},
	{.name = "event_namespace", .type = CONFIG_STRING, .off = S(event_namespace),
	 .check = check_label},
};
#undef S

void agent_settings_defaults(struct agent_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->log_format = AGENT_LOG_TEXT;
	s->retry_min_ms = 1000;
	s->retry_max_ms = 5 * 60 * 1000;
	s->stop_timeout_ms = 1500;
}

struct config_section agent_config_section(struct agent_settings *s)
{
	return (struct config_section){agent_keys, ARRAY_SIZE(agent_keys), s};
}

void agent_settings_free(struct agent_settings *s)
{
	struct config_section sec = agent_config_section(s);
	config_section_free(&sec);
}

int agent_status_query(const char *path, char **json, struct werr *err)
{
	*json = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return werr_set(err, -ENAMETOOLONG, "%s: path too long for a socket", path);
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return werr_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return werr_set(err, -errno, "%s: %s", path, strerror(errno));
	size_t len = 0, cap = 0;
	char *buf = NULL;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, 10000);
		if (pr <= 0) {
			free(buf);
			return werr_set(err, pr == 0 ? -ETIMEDOUT : -errno,
					"%s: the agent did not answer", path);
		}
		if (len + 4096 + 1 > cap) {
			if (cap > 16 * 1024 * 1024) {
				free(buf);
				return werr_set(err, -EFBIG, "%s: answer too long", path);
			}
			cap = cap ? cap * 2 : 16384;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return werr_set(err, -e, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf)
		return werr_set(err, -EPROTO, "%s: the agent closed without an answer", path);
	buf[len] = '\0';
	*json = buf;
	return 0;
}
