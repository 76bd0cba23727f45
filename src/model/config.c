#include "model/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"

typedef struct {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, seq;
    float eps, theta;
    RopeLayout rope;
    int qk_norm, tied;
} Preset;

// llama2.c models use eps 1e-5, theta 1e4, interleaved RoPE, tied classifier.
static const Preset PRESETS[] = {
    {"stories260k", 64, 172, 5, 8, 4, 8, 512, 512, 1e-5f, 1e4f, ROPE_INTERLEAVED, 0, 1},
    {"stories15m", 288, 768, 6, 6, 6, 48, 32000, 256, 1e-5f, 1e4f, ROPE_INTERLEAVED, 0, 1},
    {"stories42m", 512, 1376, 8, 8, 8, 64, 32000, 1024, 1e-5f, 1e4f, ROPE_INTERLEAVED, 0, 1},
    {"stories110m", 768, 2048, 12, 12, 12, 64, 32000, 1024, 1e-5f, 1e4f, ROPE_INTERLEAVED, 0, 1},
    {"qwen3-0.6b", 1024, 3072, 28, 16, 8, 128, 151936, 40960, 1e-6f, 1e6f, ROPE_HALF, 1, 1},
    // Qwen3's shape (QK-norm, rotate-half, GQA, head dim 64 on a 128-wide stream,
    // the real 151936 vocab) at a size that trains on 2 cores in minutes with
    // --compact-vocab on Qwen3 tokens; the embedding is 19.4M of its 20.3M
    {"qwen3-tiny", 128, 384, 4, 4, 2, 64, 151936, 256, 1e-6f, 1e6f, ROPE_HALF, 1, 1},
    // small models for tests and quick experiments
    {"tiny-mha", 64, 160, 2, 4, 4, 16, 256, 64, 1e-5f, 1e4f, ROPE_INTERLEAVED, 0, 1},
    {"tiny-gqa", 64, 160, 2, 4, 2, 16, 256, 64, 1e-5f, 1e4f, ROPE_INTERLEAVED, 0, 1},
    {"tiny-qwen3", 64, 160, 2, 4, 2, 32, 256, 64, 1e-6f, 1e6f, ROPE_HALF, 1, 1},
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

const char *config_preset_names(void) {
    return "stories260k, stories15m, stories42m, stories110m, qwen3-0.6b, qwen3-tiny, tiny-mha, tiny-gqa, "
           "tiny-qwen3";
}

int config_preset(Config *cfg, const char *name) {
    for (size_t i = 0; i < N_PRESETS; i++) {
        const Preset *p = &PRESETS[i];
        if (strcmp(p->name, name) != 0) continue;
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->name, sizeof cfg->name, "%s", p->name);
        cfg->dim = p->dim;
        cfg->hidden = p->hidden;
        cfg->n_layers = p->layers;
        cfg->n_heads = p->heads;
        cfg->n_kv_heads = p->kv_heads;
        cfg->head_dim = p->head_dim;
        cfg->vocab = p->vocab;
        cfg->seq_len = p->seq;
        cfg->norm_eps = p->eps;
        cfg->rope_theta = p->theta;
        cfg->rope_layout = p->rope;
        cfg->qk_norm = p->qk_norm;
        cfg->tied = p->tied;
        cfg->res_scale = 1.0f;
        return 0;
    }
    return err_set("unknown model preset '%s' (expected one of: %s)", name, config_preset_names());
}

int config_validate(const Config *c, const char *src) {
    struct { const char *n; int v; } dims[] = {
        {"dim", c->dim}, {"hidden", c->hidden}, {"n_layers", c->n_layers}, {"n_heads", c->n_heads},
        {"n_kv_heads", c->n_kv_heads}, {"head_dim", c->head_dim}, {"vocab", c->vocab}, {"seq_len", c->seq_len},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v <= 0) return err_set("%s: %s must be positive, found %d", src, dims[i].n, dims[i].v);
    if (c->n_heads % c->n_kv_heads != 0)
        return err_set("%s: n_heads (%d) must be a multiple of n_kv_heads (%d)", src, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0) return err_set("%s: head_dim must be even for RoPE, found %d", src, c->head_dim);
    // guard against absurd sizes that would overflow size_t arithmetic or int GEMM dims
    if (c->dim > (1 << 16) || c->hidden > (1 << 18) || c->n_layers > 1024 || c->head_dim > 4096 ||
        c->n_heads > 1024 || c->vocab > (1 << 22) || c->seq_len > (1 << 20))
        return err_set("%s: dimensions out of supported range (dim %d, hidden %d, layers %d, vocab %d, seq %d)",
                       src, c->dim, c->hidden, c->n_layers, c->vocab, c->seq_len);
    if (!(c->norm_eps > 0 && c->norm_eps < 1)) return err_set("%s: norm_eps must be in (0,1), found %g", src, c->norm_eps);
    if (!(c->rope_theta > 1)) return err_set("%s: rope_theta must be > 1, found %g", src, c->rope_theta);
    if (!(c->res_scale > 0 && isfinite(c->res_scale)))
        return err_set("%s: residual scale must be positive, found %g", src, c->res_scale);
    return 0;
}

int config_equal(const Config *a, const Config *b, char *why, size_t n) {
#define CMP_I(f) if (a->f != b->f) { snprintf(why, n, #f " %d vs %d", a->f, b->f); return 0; }
#define CMP_F(f) if (a->f != b->f) { snprintf(why, n, #f " %g vs %g", (double)a->f, (double)b->f); return 0; }
    CMP_I(dim) CMP_I(hidden) CMP_I(n_layers) CMP_I(n_heads) CMP_I(n_kv_heads) CMP_I(head_dim)
    CMP_I(vocab) CMP_I(seq_len) CMP_F(norm_eps) CMP_F(rope_theta) CMP_I(rope_layout) CMP_I(qk_norm)
    CMP_I(tied) CMP_F(res_scale)
#undef CMP_I
#undef CMP_F
    if (n) why[0] = 0;
    return 1;
}

size_t config_num_params(const Config *c) {
    size_t D = c->dim, H = c->hidden, L = c->n_layers, V = c->vocab;
    size_t QD = config_q_dim(c), KVD = config_kv_dim(c);
    size_t per_layer = 2 * D + QD * D + 2 * KVD * D + D * QD + 3 * H * D + (c->qk_norm ? 2 * (size_t)c->head_dim : 0);
    return V * D + L * per_layer + D + (c->tied ? 0 : V * D);
}

void config_print(const Config *c, FILE *f) {
    fprintf(f, "model %s: dim %d, hidden %d, layers %d, heads %d/%d (q/kv), head_dim %d, vocab %d, seq %d\n",
            c->name[0] ? c->name : "(unnamed)", c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads,
            c->head_dim, c->vocab, c->seq_len);
    fprintf(f, "  rope %s theta %g, norm eps %g, qk-norm %s, classifier %s, residual scale %g, params %.2fM\n",
            c->rope_layout == ROPE_HALF ? "rotate-half" : "interleaved", c->rope_theta, c->norm_eps,
            c->qk_norm ? "on" : "off", c->tied ? "tied" : "separate", c->res_scale,
            config_num_params(c) / 1e6);
}

// --- Hugging Face config.json ---------------------------------------------------

#ifdef USE_CJSON
#include <cjson/cJSON.h>

static int json_int(const cJSON *root, const char *key, int *out, int required, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return err_set("%s: missing required key \"%s\"", path, key);
        return 1;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 2e9)
        return err_set("%s: \"%s\" must be an integer", path, key);
    *out = (int)it->valuedouble;
    return 0;
}

static int json_num(const cJSON *root, const char *key, float *out, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return 1;
    if (!cJSON_IsNumber(it)) return err_set("%s: \"%s\" must be a number", path, key);
    *out = (float)it->valuedouble;
    return 0;
}

int config_from_hf_json(Config *cfg, const char *path) {
    char *text = NULL;
    if (io_read_text(path, IO_TEXT_MAX, &text, NULL) != 0) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set("%s: not a JSON object (expected a Hugging Face config.json)", path);
    }
    int rc = -1;
    memset(cfg, 0, sizeof *cfg);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *model_type = cJSON_IsString(mt) ? mt->valuestring : "";
    int is_qwen3 = strcmp(model_type, "qwen3") == 0;
    if (!mt && cJSON_GetObjectItemCaseSensitive(root, "weight_map")) {
        err_set("%s: expected a Hugging Face config.json, found a safetensors index (\"weight_map\"); name the "
                "index as *.safetensors.index.json, or its directory", path);
        goto done;
    }
    if (!is_qwen3 && strcmp(model_type, "llama") != 0) {
        err_set("%s: model_type \"%s\" is not supported (expected llama or qwen3)", path, model_type);
        goto done;
    }
    snprintf(cfg->name, sizeof cfg->name, "hf-%s", model_type);
    if (json_int(root, "hidden_size", &cfg->dim, 1, path) < 0) goto done;
    if (json_int(root, "intermediate_size", &cfg->hidden, 1, path) < 0) goto done;
    if (json_int(root, "num_hidden_layers", &cfg->n_layers, 1, path) < 0) goto done;
    if (json_int(root, "num_attention_heads", &cfg->n_heads, 1, path) < 0) goto done;
    if (json_int(root, "vocab_size", &cfg->vocab, 1, path) < 0) goto done;
    cfg->n_kv_heads = cfg->n_heads;
    if (json_int(root, "num_key_value_heads", &cfg->n_kv_heads, 0, path) < 0) goto done;
    cfg->head_dim = cfg->n_heads > 0 ? cfg->dim / cfg->n_heads : 0;
    if (json_int(root, "head_dim", &cfg->head_dim, 0, path) < 0) goto done;
    cfg->seq_len = 2048;
    if (json_int(root, "max_position_embeddings", &cfg->seq_len, 0, path) < 0) goto done;
    cfg->norm_eps = 1e-6f;
    if (json_num(root, "rms_norm_eps", &cfg->norm_eps, path) < 0) goto done;
    cfg->rope_theta = 10000.0f;
    if (json_num(root, "rope_theta", &cfg->rope_theta, path) < 0) goto done;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");  // newer transformers
    if (cJSON_IsObject(rp) && json_num(rp, "rope_theta", &cfg->rope_theta, path) < 0) goto done;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        err_set("%s: rope_scaling is set; scaled RoPE is not supported", path);
        goto done;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    cfg->tied = tie ? cJSON_IsTrue(tie) : 1;  // PretrainedConfig's default is true
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(root, "attention_bias");
    if (cJSON_IsTrue(bias)) {
        err_set("%s: attention_bias is true; biased projections are not supported", path);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0)) {
        err_set("%s: hidden_act must be \"silu\"", path);
        goto done;
    }
    cfg->rope_layout = ROPE_HALF;  // HF checkpoints use rotate_half
    cfg->qk_norm = is_qwen3;
    cfg->res_scale = 1.0f;
    rc = config_validate(cfg, path);
done:
    cJSON_Delete(root);
    return rc;
}
#else  // built without cJSON
int config_from_hf_json(Config *cfg, const char *path) {
    memset(cfg, 0, sizeof *cfg);
    char *text = NULL;  // a missing, special or oversized file is named as such first
    if (io_read_text(path, IO_TEXT_MAX, &text, NULL) != 0) return -1;
    free(text);
    return err_set("%s: this anetrain was built without cJSON, which config.json needs "
                   "(install libcjson-dev and rebuild)", path);
}
#endif
