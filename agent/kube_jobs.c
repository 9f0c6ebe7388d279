/*
 * Kubernetes mode, on the worker thread: the API requests other than the
 * watch (PV create/delete, Events) and the release flow. One client
 * (a->km->kc), used only here. No retries inside: kube_mode.c retries a
 * failed job on the agent's back-off.
 *
 * The release flow (KOP_ERASE), for a PV Released with policy Delete:
 *   1. the mapping must be unused (open count, holders): else refused,
 *      nothing changed (EraseRefused);
 *   2. close the mapping;
 *   3. crypto-erase (volume_erase: the wrapped key and digest destroyed in
 *      both header copies, the data area discarded);
 *   4. format with a fresh Vault datakey and a new UUID;
 *   5. open it again;
 *   6. delete the PV object (uid precondition: only the one that was
 *      Released); kube_mode.c publishes the new one once the old is gone.
 * Steps 2–5 take milliseconds whatever the size (no data is written).
 */
#include "agent/kmode.h"

#include <fcntl.h>
#include <inttypes.h>

static uint64_t dev_size(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	uint64_t sz = 0;
	if (fd < 0 || fd_size(fd, &sz) < 0)
		return 0;
	return sz;
}

static int publish(struct kjob *kj, struct werr *err)
{
	char map[160];
	snprintf(map, sizeof(map), "/dev/mapper/%s", kj->vol);
	uint64_t cap = dev_size(map), dev = dev_size(kj->device);
	if (!cap)
		return werr_set(err, -ENODEV, "%s: cannot read its size; not published", map);
	if (dev && cap > dev)
		cap = dev; /* never more than the device holds */
	kj->spec.capacity_bytes = cap;
	json_t *doc = kube_pv_build(&kj->spec);
	if (!doc)
		return -ENOMEM;
	int r = kube_pv_create(kj->kc, doc, &kj->pv, &kj->existed, err);
	json_decref(doc);
	if (r < 0)
		return r;
	if (kj->existed && kj->pv.deleting) {
		kj->again = true; /* the old object is still going away */
		return 0;
	}
	if (!kj->existed) {
		snprintf(kj->pv_uid, sizeof(kj->pv_uid), "%s", kj->pv.uid);
		kj->ev = true;
		snprintf(kj->ev_reason, sizeof(kj->ev_reason), "VolumePublished");
		snprintf(kj->ev_message, sizeof(kj->ev_message),
			 "PV %s published for /dev/mapper/%s (%" PRIu64 " bytes, LUKS UUID %s)",
			 kj->pv.name, kj->vol, cap, kj->luks_uuid);
	}
	return 0;
}

static int erase(struct worker *w, struct kjob *kj, struct werr *err)
{
	uint64_t t0 = agent_now_ms();
	struct volume_ctx vctx;
	/* Vault first: a Vault that is down must not leave the volume closed. */
	int r = worker_vctx(w, &vctx, err);
	if (r < 0) {
		kj->mapped = true;
		return r;
	}
	struct volume_status *st = NULL;
	size_t ns = 0;
	struct werr e2;
	werr_clear(&e2);
	r = volume_status_list(&vctx, kj->vol, &st, &ns, &e2);
	if (r == 0 && ns > 0) {
		kj->mapped = true;
		if (st[0].open_count > 0 || st[0].holders[0]) {
			kj->in_use = true;
			r = werr_set(err, -EBUSY,
				     "PV %s is Released but /dev/mapper/%s is in use (open count %d%s%s): not erased, kept Released",
				     kj->pv_name, kj->vol, st[0].open_count,
				     st[0].holders[0] ? ", holders " : "", st[0].holders);
			free(st);
			goto refused;
		}
		free(st);
		r = volume_close(&vctx, kj->vol, false, false, err);
		if (r < 0) {
			kj->in_use = r == -EBUSY;
			if (kj->in_use)
				goto refused;
			return r;
		}
		kj->mapped = false;
	} else {
		free(st);
	}
	struct volume_erase_report rep = {0};
	r = volume_erase(&vctx, kj->device, NULL, &rep, err);
	if (r < 0)
		return werr_prefix(err, r, "erase of %s", kj->device);
	struct volume_format_req fr = {.device = kj->device, .name = kj->vol, .force = true};
	struct volume_format_result res;
	r = volume_format(&vctx, &fr, &res, err);
	if (r < 0)
		return werr_prefix(err, r, "%s erased, but formatting it again failed", kj->device);
	struct volume_open_req orq = {.device = kj->device, .name = kj->vol};
	r = volume_open(&vctx, &orq, err);
	if (r < 0)
		return werr_prefix(err, r, "%s erased and formatted, but opening it failed", kj->device);
	kj->mapped = true;
	snprintf(kj->new_uuid, sizeof(kj->new_uuid), "%s", res.uuid);
	kj->erase_ms = agent_now_ms() - t0;
	kj->ev = true;
	snprintf(kj->ev_reason, sizeof(kj->ev_reason), "VolumeErased");
	snprintf(kj->ev_message, sizeof(kj->ev_message),
		 "PV %.100s was Released: /dev/mapper/%s crypto-erased (%.120s), formatted with a fresh key (LUKS UUID %s) and opened in %llu ms; the PV is published again",
		 kj->pv_name, kj->vol, rep.data_action[0] ? rep.data_action : "key destroyed",
		 res.uuid, (unsigned long long)kj->erase_ms);
	if (!kj->pv_uid[0])
		return 0; /* a retried release whose PV is gone already */
	return kube_pv_delete(kj->kc, kj->pv_name, kj->pv_uid, err);

refused:
	kj->ev = true;
	kj->ev_warning = true;
	snprintf(kj->ev_reason, sizeof(kj->ev_reason), "EraseRefused");
	snprintf(kj->ev_message, sizeof(kj->ev_message), "%.500s", err->msg);
	return r;
}

int kmode_post_event(struct kmode *km, const char *pv_name, const char *pv_uid, bool warning,
		     const char *reason, const char *message, uint64_t unique, struct werr *err)
{
	struct kube_event_spec es = {
		.ns = km->ns, .pv_name = pv_name, .pv_uid = pv_uid, .warning = warning,
		.reason = reason, .message = message, .node = km->node, .now = time(NULL),
		.unique = unique,
	};
	return kube_event_post(km->kc, &es, err);
}

void kjob_run(struct worker *w, struct kjob *kj)
{
	struct werr e;
	werr_clear(&e);
	int r = 0;
	switch (kj->op) {
	case KOP_PUBLISH: r = publish(kj, &e); break;
	case KOP_DELETE: r = kube_pv_delete(kj->kc, kj->pv_name, kj->pv_uid, &e); break;
	case KOP_EVENT: break;
	case KOP_ERASE: r = erase(w, kj, &e); break;
	}
	kj->rc = r;
	if (r < 0) {
		snprintf(kj->msg, sizeof(kj->msg), "%s", werr_str(&e, r));
		kj->retry_after_s = kube_client_retry_after(kj->kc); /* before the Event's request */
	}
	if (kj->ev) {
		struct kube_event_spec es = {
			.ns = kj->ns, .pv_name = kj->pv_name, .pv_uid = kj->pv_uid,
			.warning = kj->ev_warning, .reason = kj->ev_reason, .message = kj->ev_message,
			.node = kj->node, .now = time(NULL), .unique = kj->ev_unique,
		};
		struct werr ee;
		werr_clear(&ee);
		int er = kube_event_post(kj->kc, &es, &ee);
		if (er < 0 && r == 0 && kj->op == KOP_EVENT) {
			kj->rc = er;
			snprintf(kj->msg, sizeof(kj->msg), "Event %s: %s", kj->ev_reason, werr_str(&ee, er));
		}
	}
}
