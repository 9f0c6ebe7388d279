/*
 * libFuzzer target for the wrapd.conf parser (common/config.c) with every
 * section the file can hold: vault's, the volume module's and the agent's,
 * parsed in one pass as wrapctl and wrapd do, then vault_config_finish.
 *
 * Findings: a crash or sanitizer report; an error that is not one line naming
 * the file; a stored string with a control character; a value outside its
 * declared range.
 */
#include "agent/settings.h"
#include "vault/vault_int.h"
#include "volume/volume.h"

#include <stdlib.h>

static void check_line(const struct werr *e)
{
	if (strncmp(e->msg, "fuzz.conf", 9) && strncmp(e->msg, "vault_", 6) &&
	    strncmp(e->msg, "out of memory", 13) && strncmp(e->msg, "Vault client", 12))
		abort(); /* every error names the file (finish's name the key) */
	if (strchr(e->msg, '\n'))
		abort();
}

static void check_str(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vault_config vc;
	struct volume_settings vs = {0};
	struct agent_settings as;
	vault_config_defaults(&vc);
	agent_settings_defaults(&as);
	struct config_section s1 = vault_config_section(&vc), s2 = volume_config_section(&vs),
			      s3 = agent_config_section(&as);
	const struct config_section *const all[] = {&s1, &s2, &s3, NULL};
	struct werr err = {0};
	int rc = config_parse("fuzz.conf", (const char *)data, size, all, &err);
	if (rc < 0) {
		check_line(&err);
	} else {
		const char *strs[] = {vc.addr, vc.namespace_, vc.cacert, vc.capath, vc.client_cert,
				      vc.client_key, vc.tls_server_name, vc.mount, vc.key,
				      vc.token_file, vc.auth_mount, vc.role, vc.jwt_file, vc.role_id,
				      vc.secret_id_file, vs.table, as.status_socket, as.metrics_listen};
		for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
			check_str(strs[i]);
		if (vc.token) /* env-only: never from a file */
			abort();
		if (vc.max_retries < 0 || vc.max_retries > 100 || vc.timeout_ms <= 0 ||
		    vc.deadline_ms <= 0 || (unsigned)vc.auth > VAULT_AUTH_APPROLE)
			abort();
		if (as.retry_min_ms < 10 || as.stop_timeout_ms > 60000)
			abort();
		if (vault_config_finish(&vc, &err) < 0)
			check_line(&err);
	}
	vault_config_free(&vc);
	volume_settings_free(&vs);
	agent_settings_free(&as);
	return 0;
}
