// peft: LoRA adapters written as Hugging Face PEFT writes them (peft.h).
#include "model/peft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/io.h"

static const char *MODULES[LORA_N_TARGETS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                              "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj"};

// One tensor of the file: layer l's A or B of target t, as PEFT lays it out.
typedef struct {
    char name[160];
    int rows, cols;
    const float *src;  // [rows][cols]
    int permute_heads; // q/k lora_B of a llama2.c model: rows to rotate-half order, heads of head_dim
    float scale;       // the residual scale folded into o/w2 lora_B
} Entry;

// Rows of B [nh*hd, r] from interleaved RoPE pairs (2i, 2i+1) to rotate-half
// pairs (i, i+hd/2), as the model's own export permutes q_proj/k_proj rows.
static void write_rows(AtomicFile *af, const Entry *e, int head_dim, float *row) {
    for (int i = 0; i < e->rows; i++) {
        int src = i;
        if (e->permute_heads) {
            const int h = i / head_dim, j = i % head_dim, half = head_dim / 2;
            src = h * head_dim + (j < half ? 2 * j : 2 * (j - half) + 1);
        }
        for (int c = 0; c < e->cols; c++) row[c] = e->scale * e->src[(size_t)src * e->cols + c];
        io_atomic_write(af, row, sizeof(float) * (size_t)e->cols);
    }
}

static int entries(const Params *a, const LoraConfig *lc, Entry **out, int *n) {
    const Config *c = &a->cfg;
    *n = 0;
    *out = calloc((size_t)c->n_layers * LORA_N_TARGETS * 2, sizeof(Entry));
    if (!*out) return err_set("out of memory");
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!(lc->targets & (1u << t))) continue;
            const LoraMat m = lora_mat(a, lc, (LoraTarget)t, l);
            const int folds = t == LORA_O || t == LORA_W2, qk = t == LORA_Q || t == LORA_K;
            Entry *ea = &(*out)[(*n)++], *eb = &(*out)[(*n)++];
            *ea = (Entry){.rows = m.r, .cols = m.in, .src = m.A, .scale = 1.0f};
            snprintf(ea->name, sizeof ea->name, "base_model.model.model.layers.%d.%s.lora_A.weight", l, MODULES[t]);
            *eb = (Entry){.rows = m.out, .cols = m.r, .src = m.B, .scale = folds ? c->res_scale : 1.0f,
                          .permute_heads = qk && c->rope_layout == ROPE_INTERLEAVED};
            snprintf(eb->name, sizeof eb->name, "base_model.model.model.layers.%d.%s.lora_B.weight", l, MODULES[t]);
        }
    return 0;
}

static int write_tensors(const Params *a, const LoraConfig *lc, const char *path) {
    Entry *e;
    int n;
    if (entries(a, lc, &e, &n) != 0) return -1;
    size_t cap = 64 + (size_t)n * 256, at = 0, off = 0;
    char *head = malloc(cap);
    const int D = a->cfg.dim, H = a->cfg.hidden, QD = config_q_dim(&a->cfg);
    float *row = malloc(sizeof(float) * (size_t)(D > H ? (D > QD ? D : QD) : (H > QD ? H : QD)));  // widest input
    if (!head || !row) {
        free(head), free(row), free(e);
        return err_set("%s: out of memory", path);
    }
    at += (size_t)snprintf(head, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        const size_t bytes = (size_t)e[i].rows * e[i].cols * sizeof(float);
        at += (size_t)snprintf(head + at, cap - at, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                               e[i].name, e[i].rows, e[i].cols, off, off + bytes);
        off += bytes;
    }
    at += (size_t)snprintf(head + at, cap - at, "}");
    while (at % 8) head[at++] = ' ';  // the data buffer starts 8-byte aligned
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)at >> (8 * i));
    AtomicFile af;
    int rc = io_atomic_open(&af, path);
    if (rc == 0) {
        io_atomic_write(&af, len, 8);
        io_atomic_write(&af, head, at);
        for (int i = 0; i < n; i++) write_rows(&af, &e[i], a->cfg.head_dim, row);
        rc = io_atomic_commit(&af);
    }
    free(head), free(row), free(e);
    return rc;
}

// A JSON string: quotes, backslashes and control bytes escaped.
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static int write_config(const LoraConfig *lc, const char *base, const char *path) {
    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) return -1;
    fprintf(af.f, "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"r\": %d,\n  \"lora_alpha\": %g,\n"
                  "  \"lora_dropout\": %g,\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
                  "  \"inference_mode\": true,\n  \"init_lora_weights\": \"gaussian\",\n  \"target_modules\": [",
            lc->rank, (double)lc->alpha, (double)lc->dropout);
    int first = 1;
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (lc->targets & (1u << t)) {
            fprintf(af.f, "%s\"%s\"", first ? "" : ", ", strchr(MODULES[t], '.') + 1);
            first = 0;
        }
    fprintf(af.f, "],\n  \"base_model_name_or_path\": ");
    json_str(af.f, base);
    fprintf(af.f, "\n}\n");
    return io_atomic_commit(&af);
}

int peft_save(const Params *a, const LoraConfig *lc, const char *base, const char *dir) {
    if (lc->train_norms)
        return err_set("%s: the adapters come with trained norm weights, which PEFT's LoRA files do not hold; "
                       "export the merged model instead (--merge)", dir);
    char st[4200], cfg[4200];
    if ((size_t)snprintf(st, sizeof st, "%s/adapter_model.safetensors", dir) >= sizeof st ||
        (size_t)snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir) >= sizeof cfg)
        return err_set("%s: path too long", dir);
    struct stat sb;
    if (mkdir(dir, 0777) != 0 && !(errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return err_set("%s: cannot create the adapter directory: %s", dir,
                       errno == EEXIST ? "a file is in the way" : strerror(errno));
    return write_tensors(a, lc, st) == 0 && write_config(lc, base, cfg) == 0 ? 0 : -1;
}
