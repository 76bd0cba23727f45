// ckpt_lora: the frozen base of a LoRA checkpoint, and such a checkpoint as a
// plain model (the adapters merged in). checkpoint.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/io.h"
#include "model/model_file.h"
#include "train/checkpoint.h"
#include "train/run_id.h"
#ifdef USE_CJSON
#include <cjson/cJSON.h>
#endif

#ifdef USE_CJSON
// A sharded Hugging Face model: the index's fingerprint combined with each
// shard's (a shard rewritten under the same index changes it too).
static int shards_fingerprint(const char *dir, const char *index, uint64_t *bytes, uint64_t *fp) {
    char *text = NULL;
    if (io_read_text(index, (size_t)64 << 20, &text, NULL) != 0) return -1;
    cJSON *o = cJSON_Parse(text), *map = cJSON_GetObjectItemCaseSensitive(o, "weight_map"), *e;
    free(text);
    int rc = cJSON_IsObject(map) ? 0 : err_set("%s: expected a weight_map object", index);
    char seen[256][256];
    int n_seen = 0;
    cJSON_ArrayForEach(e, map) {
        if (rc != 0 || !cJSON_IsString(e)) continue;
        int dup = 0;
        for (int i = 0; i < n_seen; i++) dup |= !strcmp(seen[i], e->valuestring);
        if (dup) continue;
        if (n_seen == 256) {
            rc = err_set("%s: more than 256 shards", index);
            break;
        }
        snprintf(seen[n_seen++], sizeof seen[0], "%s", e->valuestring);
        char path[4400];
        uint64_t b = 0, f = 0;
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        rc = run_id_fingerprint(path, &b, &f);
        *bytes += b, *fp = (*fp ^ f) * 0x100000001b3ull;
    }
    cJSON_Delete(o);
    return rc;
}
#endif

int ckpt_lora_fingerprint(const char *model, uint64_t *bytes, uint64_t *fp) {
    struct stat sb;
    if (stat(model, &sb) != 0 || !S_ISDIR(sb.st_mode)) return run_id_fingerprint(model, bytes, fp);
    char path[4200];  // a Hugging Face directory: its weights stand for it
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    if (stat(path, &sb) == 0) return run_id_fingerprint(path, bytes, fp);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", model);
    if (run_id_fingerprint(path, bytes, fp) != 0) return -1;
#ifdef USE_CJSON
    return shards_fingerprint(model, path, bytes, fp);
#else
    return 0;
#endif
}

int ckpt_lora_base(Params *base, const TrainState *st, const char *ckpt) {
    uint64_t bytes = 0, fp = 0;
    Config c;
    TrainState bs;
    if (ckpt_is_checkpoint(st->lora_base) && ckpt_read_header(st->lora_base, &c, &bs, NULL) == 0 && bs.lora.rank > 0)
        return err_set("%s: its LoRA base %s is itself a LoRA checkpoint; merge that one first (export --merge)", ckpt,
                       st->lora_base);
    if (ckpt_lora_fingerprint(st->lora_base, &bytes, &fp) != 0) return err_wrap("%s: its LoRA base model", ckpt);
    if (bytes != st->lora_base_bytes || fp != st->lora_base_fp)
        return err_set("%s: its LoRA base %s changed since the adapters were trained: expected %llu bytes with "
                       "fingerprint %016llx, found %llu bytes with %016llx", ckpt, st->lora_base,
                       (unsigned long long)st->lora_base_bytes, (unsigned long long)st->lora_base_fp,
                       (unsigned long long)bytes, (unsigned long long)fp);
    return model_load(base, st->lora_base);
}

int ckpt_lora_apply(Params *out, const Params *base, const char *lora_ckpt) {
    Params a;
    TrainState st;
    if (ckpt_load(lora_ckpt, &a, NULL, NULL, &st) != 0) return -1;
    int rc = 0;
    char why[128];
    if (st.lora.rank <= 0) rc = err_set("%s: not a LoRA checkpoint (it holds a whole model)", lora_ckpt);
    else if (!config_equal(&base->cfg, &a.cfg, why, sizeof why))
        rc = err_set("%s: its adapters are for another model than the base (%s)", lora_ckpt, why);
    else rc = lora_merge(out, base, &a, &st.lora);
    params_free(&a);
    return rc;
}

int ckpt_load_model(const char *path, Params *p) {
    TrainState st;
    if (ckpt_load(path, p, NULL, NULL, &st) != 0) return -1;
    if (st.lora.rank <= 0) return 0;
    Params a = *p, base = {0};
    memset(p, 0, sizeof *p);
    char why[128];
    int rc = ckpt_lora_base(&base, &st, path);
    if (rc == 0 && !config_equal(&base.cfg, &a.cfg, why, sizeof why))
        rc = err_set("%s: its adapters are for another model than its base %s (%s)", path, st.lora_base, why);
    if (rc == 0) rc = lora_merge(p, &base, &a, &st.lora);
    params_free(&a);
    params_free(&base);
    return rc;
}

int ckpt_load_with_lora(Params *p, const char *model, const char *lora_ckpt) {
    if (model_load(p, model) != 0) return -1;
    if (!lora_ckpt) return 0;
    Params merged;
    if (ckpt_lora_apply(&merged, p, lora_ckpt) != 0) {
        params_free(p);
        return -1;
    }
    params_free(p);
    *p = merged;
    return 0;
}
