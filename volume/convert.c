/*
 * Conversions (encrypt, rekey, decrypt, resume) with keys from Vault: the
 * engine (engine/engine.h) does the work; this file is its key provider.
 * A new VK is Vault's datakey for the configured Transit key (vkey_new);
 * the VK of a token is unwrapped with the token's mount/key unless the
 * caller overrode them (ctx->vault_key_explicit). Clients are made when a
 * key is first needed, so the engine's refusals come before any request.
 */
#include "volume/internal.h"

struct keyprov {
	const struct volume_ctx *ctx;
	struct vgroups gs;
};

static int kp_new_key(void *arg, const char *uuid, struct secbuf *vk, struct wrapd_token *tok,
		      struct werr *err)
{
	struct keyprov *kp = arg;
	return vkey_new(kp->ctx, uuid, vk, tok, err);
}

static int kp_unwrap(void *arg, const struct wrapd_token *tok, struct secbuf *vk, struct werr *err)
{
	struct keyprov *kp = arg;
	return vkey_unwrap(kp->ctx, &kp->gs, tok, vk, err);
}

int volume_convert(const struct volume_ctx *ctx, struct volume_convert_req *rq,
		   struct conv_result *res, struct werr *err)
{
	struct keyprov kp = {.ctx = ctx};
	struct online_map om;
	struct conv_online on;
	bool online = false;
	memset(res, 0, sizeof(*res));
	uint64_t zs = rq->zone_size;
	if (zs && (zs < CONV_ZONE_MIN || zs > CONV_ZONE_MAX || (zs & (zs - 1))))
		return werr_set(err, -EINVAL,
				"%s: the zone size must be a power of two from %llu KiB to %llu MiB (got %llu bytes)",
				rq->device, CONV_ZONE_MIN >> 10, CONV_ZONE_MAX >> 20,
				(unsigned long long)zs);
	if (rq->op == CONV_REKEY || rq->op == CONV_RESUME) {
		int f = online_find(ctx, rq->device, rq->header, &om, err);
		if (f < 0)
			return f;
		if (f == 1) {
			online_map_ops(&om, &on);
			on.max_rate = rq->max_rate;
			on.zone_size = zs;
			on.map_size = om.g.size;
			online = true;
		}
	}
	if (zs && !online)
		return werr_set(err, -EINVAL,
				"%s: a zone size applies only to an online rekey, and no wrapd mapping of it is open: "
				"run it without one (offline), or open the volume first",
				rq->device);
	rq->online = online;
	struct conv_keyprov keys = {.new_key = kp_new_key, .unwrap = kp_unwrap, .arg = &kp};
	struct conv_params p = {
		.device = rq->device,
		.header = rq->header,
		.op = rq->op,
		.sector_size = rq->sector_size,
		.tail_is_free = rq->tail_is_free,
		.keys = &keys,
		.progress = rq->progress,
		.progress_arg = rq->progress_arg,
		.stop = rq->stop,
		.log = ctx->log,
		.online = online ? &on : NULL,
	};
	int rc = conv_run(&p, res, err);
	vgroups_free(&kp.gs);
	return rc;
}

static int run_op(const struct volume_ctx *ctx, const struct volume_convert_req *rq,
		  enum conv_op op, struct conv_result *res, struct werr *err)
{
	struct volume_convert_req r = *rq;
	r.op = op;
	return volume_convert(ctx, &r, res, err);
}

int volume_encrypt(const struct volume_ctx *ctx, const struct volume_convert_req *rq,
		   struct conv_result *res, struct werr *err)
{
	return run_op(ctx, rq, CONV_ENCRYPT, res, err);
}

int volume_rekey(const struct volume_ctx *ctx, const struct volume_convert_req *rq,
		 struct conv_result *res, struct werr *err)
{
	return run_op(ctx, rq, CONV_REKEY, res, err);
}

int volume_decrypt(const struct volume_ctx *ctx, const struct volume_convert_req *rq,
		   struct conv_result *res, struct werr *err)
{
	return run_op(ctx, rq, CONV_DECRYPT, res, err);
}

int volume_resume(const struct volume_ctx *ctx, const struct volume_convert_req *rq,
		  struct conv_result *res, struct werr *err)
{
	return run_op(ctx, rq, CONV_RESUME, res, err);
}
