/*
 * agent/settings: the wrapd agent's keys of the shared wrapd.conf, and the
 * client side of its status socket. This part is in the library so that
 * wrapctl can check the agent's keys when it parses the shared file and can
 * ask a running agent for its view (wrapctl status).
 *
 * Keys (defaults in brackets):
 *   status_socket      [/run/wrapd/wrapd.sock]
 *   metrics_listen     [127.0.0.1:9842]   ADDRESS:PORT; empty = no HTTP endpoint
 *   log_format         [text]             text | json
 *   agent_retry_min    [1s]               first back-off step while Vault is unavailable
 *   agent_retry_max    [5m]               back-off cap
 *   agent_stop_timeout [1500ms]           how long SIGTERM waits for a running job
 *   rekey_max_rate     [0]                MiB/s for an online rekey the agent resumes;
 *                                         0 = unlimited
 * Kubernetes mode (the DaemonSet's ConfigMap sets them; see wrapd.conf(5)):
 *   kubernetes         [no]               yes: discovery + PV publishing
 *   discovery_dir      [/var/lib/wrapd/discovery]
 *   kubelet_dir        [/var/lib/kubelet]
 *   storage_class      [encrypted]
 *   node_name          []                 empty: $NODE_NAME, else the host name
 *   kube_api_url       []                 empty: https://$KUBERNETES_SERVICE_HOST:$..._PORT
 *   kube_token_file    [/var/run/secrets/kubernetes.io/serviceaccount/token]
 *   kube_ca_file       [/var/run/secrets/kubernetes.io/serviceaccount/ca.crt]
 *   convert_existing   [no]
 *   volume_mode        [Filesystem]       Filesystem | Block
 *   fs_type            [ext4]
 *   reclaim_policy     [Delete]           Delete | Retain
 *   event_namespace    [default]
 * (volume_table belongs to the volume module's section.)
 */
#ifndef WRAPD_AGENT_SETTINGS_H
#define WRAPD_AGENT_SETTINGS_H

#include "common/common.h"
#include "common/config.h"

#define AGENT_CONFIG_PATH_DEFAULT "/etc/wrapd/wrapd.conf"
#define AGENT_STATUS_SOCKET_DEFAULT "/run/wrapd/wrapd.sock"
#define AGENT_METRICS_LISTEN_DEFAULT "127.0.0.1:9842"
#define AGENT_DISCOVERY_DIR_DEFAULT "/var/lib/wrapd/discovery"
#define AGENT_KUBELET_DIR_DEFAULT "/var/lib/kubelet"
#define AGENT_STORAGE_CLASS_DEFAULT "encrypted"
#define AGENT_FS_TYPE_DEFAULT "ext4"
#define AGENT_EVENT_NAMESPACE_DEFAULT "default"
enum agent_volume_mode { AGENT_MODE_FILESYSTEM = 0, AGENT_MODE_BLOCK };
enum agent_reclaim { AGENT_RECLAIM_DELETE = 0, AGENT_RECLAIM_RETAIN };

enum agent_log_format { AGENT_LOG_TEXT = 0, AGENT_LOG_JSON };

struct agent_settings {
	char *status_socket;       /* NULL = AGENT_STATUS_SOCKET_DEFAULT */
	char *metrics_listen;      /* NULL = AGENT_METRICS_LISTEN_DEFAULT; "" = off */
	int log_format;            /* enum agent_log_format */
	long retry_min_ms;
	long retry_max_ms;
	long stop_timeout_ms;
	int rekey_max_rate;        /* MiB/s, 0 = unlimited */
	/* Kubernetes mode; NULL strings = the defaults above */
	int kubernetes;            /* yes|no|true|false: odd = on */
	char *discovery_dir, *kubelet_dir, *storage_class;
	char *node_name;           /* NULL or "" = $NODE_NAME, else the host name */
	char *kube_api_url;        /* NULL or "" = in-cluster */
	char *kube_token_file, *kube_ca_file; /* NULL = kube/'s defaults */
	int convert_existing;      /* as kubernetes */
	int volume_mode;           /* enum agent_volume_mode */
	char *fs_type;
	int reclaim_policy;        /* enum agent_reclaim */
	char *event_namespace;
};
void agent_settings_defaults(struct agent_settings *s);
/* The section over s (s NULL: checked, not stored). */
struct config_section agent_config_section(struct agent_settings *s);
void agent_settings_free(struct agent_settings *s);
static inline const char *agent_status_socket(const struct agent_settings *s)
{
	return s && s->status_socket ? s->status_socket : AGENT_STATUS_SOCKET_DEFAULT;
}

/* Reads a running agent's status document (JSON text, malloc'ed) from its
 * socket. -ENOENT/-ECONNREFUSED: no agent runs there. */
int agent_status_query(const char *socket_path, char **json, struct werr *err);

#endif
