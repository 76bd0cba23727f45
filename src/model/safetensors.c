// safetensors: Hugging Face weights; the format and the name mapping are in
// safetensors.h. Sections: reading one file, loading a model (one file or an
// index + shards), writing a model.
#include "model/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/io.h"
#include "model/config.h"

int safetensors_detect(const uint8_t *b, size_t size) {
    if (size < 9 || b[8] != '{') return 0;
    uint64_t n = io_le64(b);
    return n >= 2 && n <= size - 8;
}

#ifdef USE_CJSON
#include <cjson/cJSON.h>

#define HEADER_CAP 100000000ull  // the reference parser's MAX_HEADER_SIZE
#define MAX_JSON_INT 9007199254740992.0  // 2^53: larger integers do not survive a double

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}};  // indexed by SafeTensorsDtype

static size_t dtype_size(SafeTensorsDtype d) { return DTYPES[d].size; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// --- reading one file ---------------------------------------------------------


// A non-negative integer that a double holds exactly.
static int json_size(const cJSON *it, size_t *out) {
    if (!cJSON_IsNumber(it)) return -1;
    double v = it->valuedouble;
    if (!(v >= 0 && v <= MAX_JSON_INT) || v != floor(v)) return -1;
    *out = (size_t)v;
    return 0;
}

static void shape_str(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

// One header entry: {"dtype", "shape", "data_offsets"}; data_len is the buffer size.
static int parse_entry(SafeTensor *t, const cJSON *e, size_t data_len, const char *path) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return err_set("%s: tensor \"%s\": expected an object {dtype, shape, data_offsets}", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt)) return err_set("%s: tensor \"%s\": expected a string \"dtype\"", path, name);
    int d = -1;
    for (int i = 0; i < (int)(sizeof DTYPES / sizeof DTYPES[0]); i++)
        if (!strcmp(dt->valuestring, DTYPES[i].name)) d = i;
    if (d < 0)
        return err_set("%s: tensor \"%s\": dtype: expected F32, F16 or BF16, found \"%s\"", path, name,
                       dt->valuestring);
    t->dtype = (SafeTensorsDtype)d;

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(sh)) return err_set("%s: tensor \"%s\": expected an array \"shape\"", path, name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > SAFETENSORS_MAX_DIMS)
        return err_set("%s: tensor \"%s\": expected at most %d dims, found %d", path, name, SAFETENSORS_MAX_DIMS,
                       ndim);
    t->ndim = ndim;
    size_t numel = 1, limit = SIZE_MAX / 4;
    int i = 0;
    for (const cJSON *v = sh->child; v; v = v->next, i++) {
        size_t dim;
        if (json_size(v, &dim) != 0)
            return err_set("%s: tensor \"%s\": shape[%d]: expected a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)dim;
        if (dim && numel > limit / dim)
            return err_set("%s: tensor \"%s\": shape is too large", path, name);
        numel *= dim;
    }
    t->numel = numel;

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    size_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_size(off->child, &b) != 0 ||
        json_size(off->child->next, &en) != 0)
        return err_set("%s: tensor \"%s\": expected \"data_offsets\": [BEGIN, END] (non-negative integers)", path,
                       name);
    if (b > en || en > data_len)
        return err_set("%s: tensor \"%s\": data_offsets [%zu, %zu] out of range: expected BEGIN <= END <= %zu "
                       "(the data buffer)", path, name, b, en, data_len);
    size_t want = numel * dtype_size(t->dtype);
    if (en - b != want) {
        char s[160];
        shape_str(s, sizeof s, t->shape, ndim);
        return err_set("%s: tensor \"%s\": expected %zu bytes (%s %s), found data_offsets [%zu, %zu] = %zu bytes",
                       path, name, want, DTYPES[d].name, s, b, en, en - b);
    }
    t->begin = b;
    t->end = en;
    t->name = strdup(name);
    if (!t->name) return err_set("%s: out of memory", path);
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const SafeTensor *)a)->name, ((const SafeTensor *)b)->name);
}

typedef struct {
    size_t begin, end;
    int i;
} Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Tensors sorted by offset must cover [0, data_len) exactly (the reference
// parser's rule): no overlap, no gap, no trailing bytes.
static int check_tiling(const SafeTensorsFile *f, size_t data_len) {
    Span *sp = malloc(sizeof *sp * (size_t)(f->n ? f->n : 1));
    if (!sp) return err_set("%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) sp[i] = (Span){f->t[i].begin, f->t[i].end, i};
    qsort(sp, (size_t)f->n, sizeof *sp, cmp_span);
    size_t at = 0;
    const SafeTensor *prev = NULL;
    int rc = 0;
    for (int i = 0; i < f->n && rc == 0; i++) {
        const SafeTensor *t = &f->t[sp[i].i];
        if (t->begin < at)
            rc = err_set("%s: tensors \"%s\" [%zu, %zu] and \"%s\" [%zu, %zu] overlap", f->path, prev->name,
                         prev->begin, prev->end, t->name, t->begin, t->end);
        else if (t->begin > at)
            rc = err_set("%s: tensor \"%s\" begins at %zu, expected %zu: %zu unused bytes before it (tensors must "
                         "be packed)", f->path, t->name, t->begin, at, t->begin - at);
        at = t->end;
        prev = t;
    }
    if (rc == 0 && at != data_len)
        rc = err_set("%s: the tensors end at byte %zu of the data buffer, which has %zu: %zu trailing bytes", f->path,
                     at, data_len, data_len - at);
    free(sp);
    return rc;
}

static int parse_header(SafeTensorsFile *f, const char *text, size_t n, size_t data_len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set("%s: the %zu-byte header is not a JSON object (expected {\"name\": {\"dtype\", \"shape\", "
                       "\"data_offsets\"}, ...})", f->path, n);
    }
    for (const char *c = end; c && c < text + n; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
            cJSON_Delete(root);
            return err_set("%s: header: unexpected bytes after the JSON object at header offset %zu", f->path,
                           (size_t)(c - text));
        }
    int count = 0;
    for (const cJSON *e = root->child; e; e = e->next) count++;
    f->t = calloc((size_t)(count ? count : 1), sizeof *f->t);
    if (!f->t) {
        cJSON_Delete(root);
        return err_set("%s: out of memory", f->path);
    }
    int rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            // string -> string (the reference parser's HashMap<String, String>)
            if (!cJSON_IsObject(e)) rc = err_set("%s: \"__metadata__\": expected an object", f->path);
            for (const cJSON *kv = e->child; kv && rc == 0; kv = kv->next)
                if (!cJSON_IsString(kv))
                    rc = err_set("%s: \"__metadata__\": value of \"%s\": expected a string", f->path, kv->string);
            continue;
        }
        rc = parse_entry(&f->t[f->n], e, data_len, f->path);
        if (rc == 0) f->n++;
    }
    cJSON_Delete(root);
    if (rc != 0) return -1;
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->t[i - 1].name, f->t[i].name))
            return err_set("%s: tensor \"%s\" appears twice in the header", f->path, f->t[i].name);
    return check_tiling(f, data_len);
}

int safetensors_open(SafeTensorsFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    if (io_map(&f->m, path) != 0) return -1;
    const uint8_t *b = f->m.data;
    size_t size = f->m.size;
    if (size < 8) {
        safetensors_close(f);
        return err_set("%s: expected a safetensors file (8-byte header length, JSON header, data), found %zu bytes",
                       path, size);
    }
    uint64_t n = io_le64(b);
    if (n > HEADER_CAP) {
        safetensors_close(f);
        return err_set("%s: header length %llu exceeds the 100 MB limit of safetensors (not a safetensors file?)",
                       path, (unsigned long long)n);
    }
    if (n > size - 8) {
        safetensors_close(f);
        return err_set("%s: header length %llu goes beyond the end of the %zu-byte file", path,
                       (unsigned long long)n, size);
    }
    char *text = malloc((size_t)n + 1);
    if (!text) {
        safetensors_close(f);
        return err_set("%s: out of memory", path);
    }
    memcpy(text, b + 8, (size_t)n);
    text[n] = 0;
    f->data_at = 8 + (size_t)n;
    int rc = parse_header(f, text, (size_t)n, size - f->data_at);
    free(text);
    if (rc != 0) safetensors_close(f);  // keeps err_msg
    return rc;
}

void safetensors_close(SafeTensorsFile *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    io_unmap(&f->m);
    f->t = NULL;
    f->n = 0;
}

const SafeTensor *safetensors_find(const SafeTensorsFile *f, const char *name) {
    SafeTensor key = {.name = (char *)name};
    return bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, cmp_name);
}

void safetensors_read_f32(const SafeTensorsFile *f, const SafeTensor *t, float *dst) {
    const uint8_t *src = f->m.data + f->data_at + t->begin;
    if (t->dtype == SAFETENSORS_F32) {
        memcpy(dst, src, t->numel * sizeof(float));  // little-endian host, like every reader here
        return;
    }
    // 16-bit data may sit at any byte offset: copy chunks to an aligned buffer first
    enum { CHUNK = 4096 };
    uint16_t buf[CHUNK];
    for (size_t i = 0; i < t->numel; i += CHUNK) {
        size_t k = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        memcpy(buf, src + 2 * i, 2 * k);
        if (t->dtype == SAFETENSORS_BF16) bf16_to_f32_array(dst + i, buf, k);
        else fp16_to_f32_array(dst + i, buf, k);
    }
}

// --- the name mapping ------------------------------------------------------------

// Our tensor name -> the HF name (per-layer ones after "model.layers.<i>.").
static const struct {
    const char *ours, *hf;
} NAMES[] = {
    {"embed", "model.embed_tokens.weight"},
    {"rms_att", "input_layernorm.weight"},
    {"wq", "self_attn.q_proj.weight"},
    {"wk", "self_attn.k_proj.weight"},
    {"wv", "self_attn.v_proj.weight"},
    {"wo", "self_attn.o_proj.weight"},
    {"q_norm", "self_attn.q_norm.weight"},
    {"k_norm", "self_attn.k_norm.weight"},
    {"rms_ffn", "post_attention_layernorm.weight"},
    {"w1", "mlp.gate_proj.weight"},
    {"w2", "mlp.down_proj.weight"},
    {"w3", "mlp.up_proj.weight"},
    {"rms_final", "model.norm.weight"},
    {"wcls", "lm_head.weight"},
};

static void hf_name(char *buf, size_t n, const TensorDesc *d, int layer) {
    const char *hf = NULL;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (!strcmp(NAMES[i].ours, d->name)) hf = NAMES[i].hf;
    CHECK_OR_ABORT(hf != NULL);  // every TensorDesc of params_layout has a row above
    if (d->per_layer) snprintf(buf, n, "model.layers.%d.%s", layer, hf);
    else snprintf(buf, n, "%s", hf);
}

// HF shapes: norm weights are 1-D (cols), matrices (rows, cols).
static int hf_shape(const TensorDesc *d, int64_t shape[2]) {
    if (d->is_norm) {
        shape[0] = d->cols;
        return 1;
    }
    shape[0] = d->rows, shape[1] = d->cols;
    return 2;
}

// --- loading a model ---------------------------------------------------------------

// Every tensor of the model's files, sorted by name, with the file holding it.
typedef struct {
    const SafeTensor *t;
    int file;
    int used;
} Ref;

typedef struct {
    SafeTensorsFile *files;
    int n_files;
    Ref *refs;
    int n_refs;
    const char *listing;  // the file that lists the tensors: the .safetensors or the index
} Source;

static void source_free(Source *s) {
    for (int i = 0; i < s->n_files; i++) safetensors_close(&s->files[i]);
    free(s->files);
    free(s->refs);
    memset(s, 0, sizeof *s);
}

static int cmp_ref(const void *a, const void *b) {
    return strcmp(((const Ref *)a)->t->name, ((const Ref *)b)->t->name);
}

static Ref *source_find(const Source *s, const char *name) {
    SafeTensor key = {.name = (char *)name};
    Ref rk = {.t = &key};
    return bsearch(&rk, s->refs, (size_t)s->n_refs, sizeof *s->refs, cmp_ref);
}

static int source_index_refs(Source *s) {
    int total = 0;
    for (int i = 0; i < s->n_files; i++) total += s->files[i].n;
    s->refs = calloc((size_t)(total ? total : 1), sizeof *s->refs);
    if (!s->refs) return err_set("%s: out of memory", s->listing);
    for (int i = 0; i < s->n_files; i++)
        for (int j = 0; j < s->files[i].n; j++) s->refs[s->n_refs++] = (Ref){&s->files[i].t[j], i, 0};
    qsort(s->refs, (size_t)s->n_refs, sizeof *s->refs, cmp_ref);
    for (int i = 1; i < s->n_refs; i++)
        if (!strcmp(s->refs[i - 1].t->name, s->refs[i].t->name))
            return err_set("%s: tensor \"%s\" is in two shards, %s and %s", s->listing, s->refs[i].t->name,
                           s->files[s->refs[i - 1].file].path, s->files[s->refs[i].file].path);
    return 0;
}

static int source_open_single(Source *s, const char *path) {
    s->listing = path;
    s->files = calloc(1, sizeof *s->files);
    if (!s->files) return err_set("%s: out of memory", path);
    if (safetensors_open(&s->files[0], path) != 0) return -1;
    s->n_files = 1;
    return source_index_refs(s);
}

// index.json: {"metadata": {...}, "weight_map": {"tensor": "shard file", ...}}
static int source_open_index(Source *s, const char *index, const char *dir) {
    s->listing = index;
    char *text = NULL;
    if (io_read_text(index, IO_TEXT_MAX, &text, NULL) != 0) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = -1;
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    char **shards = NULL;
    int n_shards = 0, n_entries = cJSON_GetArraySize(wm);
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        err_set("%s: expected a JSON object with a \"weight_map\" object (a safetensors index)", index);
        goto done;
    }
    shards = calloc((size_t)(n_entries ? n_entries : 1), sizeof *shards);
    if (!shards) {
        err_set("%s: out of memory", index);
        goto done;
    }
    // the distinct shard names, in order of first mention; each opened once
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')) {
            err_set("%s: weight_map[\"%s\"]: expected a shard file name in the same directory", index, e->string);
            goto done;
        }
        int k = 0;
        while (k < n_shards && strcmp(shards[k], e->valuestring)) k++;
        if (k == n_shards) shards[n_shards++] = e->valuestring;
    }
    if (n_shards == 0) {
        err_set("%s: weight_map is empty", index);
        goto done;
    }
    s->files = calloc((size_t)n_shards, sizeof *s->files);
    if (!s->files) {
        err_set("%s: out of memory", index);
        goto done;
    }
    for (int k = 0; k < n_shards; k++) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, shards[k]) >= sizeof path) {
            err_set("%s: shard path too long: %s/%s", index, dir, shards[k]);
            goto done;
        }
        if (safetensors_open(&s->files[k], path) != 0) {
            err_wrap("%s: shard %s", index, shards[k]);
            goto done;
        }
        s->n_files++;
    }
    if (source_index_refs(s) != 0) goto done;
    // the index and the shards must agree both ways
    for (const cJSON *e = wm->child; e; e = e->next) {
        const Ref *r = source_find(s, e->string);
        if (!r || strcmp(strrchr(s->files[r->file].path, '/') + 1, e->valuestring)) {
            err_set("%s: weight_map puts tensor \"%s\" in %s, which does not hold it", index, e->string,
                    e->valuestring);
            goto done;
        }
    }
    if (s->n_refs != n_entries) {
        // some shard holds a tensor the index does not list (every listed one was found above)
        for (int i = 0; i < s->n_refs; i++)
            if (!cJSON_GetObjectItemCaseSensitive(wm, s->refs[i].t->name)) {
                err_set("%s: shard %s holds tensor \"%s\", which weight_map does not list", index,
                        s->files[s->refs[i].file].path, s->refs[i].t->name);
                goto done;
            }
        err_set("%s: weight_map lists a tensor twice", index);
        goto done;
    }
    rc = 0;
done:
    free(shards);
    cJSON_Delete(root);
    return rc;
}

static int is_ignored(const char *name) { return ends_with(name, "rotary_emb.inv_freq"); }

// Copies every expected tensor from s into p (allocated for cfg); checks the rest.
static int load_tensors(Params *p, Source *s) {
    const Config *c = &p->cfg;
    char name[256];
    for (int i = 0; i < p->n_tensors; i++) {
        const TensorDesc *d = &p->t[i];
        int64_t want[2] = {0, 0};
        int wdim = hf_shape(d, want);
        size_t per = (size_t)d->rows * d->cols;
        for (int l = 0; l < (d->per_layer ? c->n_layers : 1); l++) {
            hf_name(name, sizeof name, d, l);
            Ref *r = source_find(s, name);
            char ws[64], fs[160];
            shape_str(ws, sizeof ws, want, wdim);
            if (!r)
                return err_set("%s: tensor \"%s\" %s is missing (the config.json describes a %s model with %s)",
                               s->listing, name, ws, c->qk_norm ? "qwen3" : "llama",
                               c->tied ? "a tied classifier" : "a separate lm_head");
            const SafeTensor *t = r->t;
            if (t->ndim != wdim || t->shape[0] != want[0] || (wdim == 2 && t->shape[1] != want[1])) {
                shape_str(fs, sizeof fs, t->shape, t->ndim);
                return err_set("%s: tensor \"%s\": expected shape %s (from config.json), found %s",
                               s->files[r->file].path, name, ws, fs);
            }
            safetensors_read_f32(&s->files[r->file], t, p->data + d->offset + (size_t)l * per);
            r->used = 1;
        }
    }
    for (int i = 0; i < s->n_refs; i++) {
        Ref *r = &s->refs[i];
        if (r->used || is_ignored(r->t->name)) continue;
        const char *file = s->files[r->file].path;
        if (c->tied && !strcmp(r->t->name, "lm_head.weight")) {
            const SafeTensor *t = r->t;
            if (t->ndim != 2 || t->shape[0] != c->vocab || t->shape[1] != c->dim) {
                char fs[160];
                shape_str(fs, sizeof fs, t->shape, t->ndim);
                return err_set("%s: tensor \"lm_head.weight\": expected shape [%d, %d] (from config.json), found %s",
                               file, c->vocab, c->dim, fs);
            }
            float *w = malloc(t->numel * sizeof(float));
            if (!w) return err_set("%s: out of memory", file);
            safetensors_read_f32(&s->files[r->file], t, w);
            int same = memcmp(w, p->v.embed, t->numel * sizeof(float)) == 0;
            free(w);
            if (!same)
                return err_set("%s: \"lm_head.weight\" differs from \"model.embed_tokens.weight\", but config.json "
                               "sets tie_word_embeddings (expected no lm_head, or an equal one)", file);
            continue;
        }
        return err_set("%s: unexpected tensor \"%s\": not part of a %s model with this config.json", file,
                       r->t->name, c->qk_norm ? "qwen3" : "llama");
    }
    return 0;
}

static int path_exists(const char *path, int want_dir) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

// Anything at path: a fifo or device named config.json then gets the readers'
// "expected a regular file, found ..." rather than "missing".
static int path_present(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int safetensors_load(Params *p, const char *path) {
    memset(p, 0, sizeof *p);
    char dir[4096], weights[4200], cfg_path[4200];
    int sharded;
    if (path_exists(path, 1)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
        sharded = 0;
        if (!path_present(weights)) {
            snprintf(weights, sizeof weights, "%s/model.safetensors.index.json", dir);
            sharded = 1;
            if (!path_present(weights))
                return err_set("%s: not a regular file, and not a Hugging Face model directory (expected "
                               "model.safetensors or model.safetensors.index.json in it)", path);
        }
    } else {
        snprintf(weights, sizeof weights, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        else snprintf(dir, sizeof dir, ".");
        if (slash == path) snprintf(dir, sizeof dir, "/");
        sharded = ends_with(path, ".index.json");
    }
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    if (!path_present(cfg_path))
        return err_set("%s: expected the Hugging Face config.json beside it, found no %s", weights, cfg_path);
    Config cfg;
    if (config_from_hf_json(&cfg, cfg_path) != 0) return -1;

    Source s;
    memset(&s, 0, sizeof s);
    int rc = sharded ? source_open_index(&s, weights, dir) : source_open_single(&s, weights);
    if (rc == 0 && params_init(p, &cfg) != 0) rc = err_wrap("%s", weights);
    if (rc == 0) rc = load_tensors(p, &s);
    source_free(&s);
    if (rc != 0) {
        params_free(p);
        return -1;
    }
    return 0;
}

// --- writing a model ----------------------------------------------------------------

// Rows of one (nh*hd, cols) matrix from interleaved RoPE pairs (2i, 2i+1) to
// rotate_half pairs (i, i+hd/2), head by head. cols = 1 permutes a vector.
static void permute_to_half(float *dst, const float *src, int nh, int hd, size_t cols) {
    int half = hd / 2;
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < half; i++) {
            const float *row = src + ((size_t)h * hd + 2 * (size_t)i) * cols;
            memcpy(dst + ((size_t)h * hd + i) * cols, row, cols * sizeof(float));
            memcpy(dst + ((size_t)h * hd + half + i) * cols, row + cols, cols * sizeof(float));
        }
}

// The shortest decimal that reads back as the same float, as a double (so
// config.json says 1e-05, not 9.99999974737875e-06).
static double float_json(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static int write_config(const Config *c, const char *path) {
    int qwen = c->qk_norm;
    cJSON *o = cJSON_CreateObject();
    const char *arch = qwen ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(&arch, 1));
    cJSON_AddStringToObject(o, "model_type", qwen ? "qwen3" : "llama");
    cJSON_AddNumberToObject(o, "hidden_size", c->dim);
    cJSON_AddNumberToObject(o, "intermediate_size", c->hidden);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->seq_len);
    cJSON_AddNumberToObject(o, "rms_norm_eps", float_json(c->norm_eps));
    cJSON_AddNumberToObject(o, "rope_theta", float_json(c->rope_theta));
    cJSON_AddNullToObject(o, "rope_scaling");
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddBoolToObject(o, "attention_bias", 0);
    cJSON_AddNumberToObject(o, "attention_dropout", 0);
    if (qwen) {
        cJSON_AddBoolToObject(o, "use_sliding_window", 0);
        cJSON_AddNullToObject(o, "sliding_window");
        cJSON_AddNumberToObject(o, "max_window_layers", c->n_layers);
    } else {
        cJSON_AddBoolToObject(o, "mlp_bias", 0);
    }
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return err_set("%s: out of memory", path);
    AtomicFile af;
    int rc = io_atomic_open(&af, path);
    if (rc == 0) {
        io_atomic_write(&af, text, strlen(text));
        io_atomic_write(&af, "\n", 1);
        rc = io_atomic_commit(&af);
    }
    free(text);
    return rc;
}

// Appends printf output to a buffer sized in advance (an overflow is a bug here).
static void put(char *buf, size_t cap, size_t *at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *at, cap - *at, fmt, ap);
    va_end(ap);
    CHECK_OR_ABORT(k >= 0 && (size_t)k < cap - *at);
    *at += (size_t)k;
}

static int make_dir(const char *dir) {
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && path_exists(dir, 1))) return 0;
    return err_set("%s: cannot create the model directory: %s", dir, errno == EEXIST ? "a file is in the way"
                                                                                     : strerror(errno));
}

int safetensors_save(const Params *p, const char *dir) {
    const Config *c = &p->cfg;
    if (c->res_scale != 1.0f)
        return err_set("%s: cannot write a Hugging Face model: residual scale is %g, and HF Llama/Qwen3 have none "
                       "(fold it into wo and w2 first, as anetrain export does)", dir, c->res_scale);
    char st_path[4200], cfg_path[4200];
    if ((size_t)snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir) >= sizeof st_path ||
        (size_t)snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir) >= sizeof cfg_path)
        return err_set("%s: path too long", dir);
    if (make_dir(dir) != 0) return -1;

    // header: every tensor of every layer, packed in our layout order, all F32
    size_t entries = 0;
    for (int i = 0; i < p->n_tensors; i++) entries += p->t[i].per_layer ? (size_t)c->n_layers : 1;
    size_t cap = 64 + entries * 256, at = 0;
    char *head = malloc(cap);
    if (!head) return err_set("%s: out of memory", st_path);
    put(head, cap, &at, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    char name[256];
    for (int i = 0; i < p->n_tensors; i++) {
        const TensorDesc *d = &p->t[i];
        int64_t shape[2] = {0, 0};
        int nd = hf_shape(d, shape);
        size_t bytes = (size_t)d->rows * d->cols * sizeof(float);
        for (int l = 0; l < (d->per_layer ? c->n_layers : 1); l++) {
            hf_name(name, sizeof name, d, l);
            put(head, cap, &at, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld", name, (long long)shape[0]);
            if (nd == 2) put(head, cap, &at, ",%lld", (long long)shape[1]);
            put(head, cap, &at, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
            off += bytes;
        }
    }
    put(head, cap, &at, "}");
    while (at % 8) put(head, cap, &at, " ");  // the data buffer starts 8-byte aligned (8 + N)

    // q/k rows (and their QK-norm weights) go to the rotate_half layout
    int permute = c->rope_layout == ROPE_INTERLEAVED;
    size_t qd = (size_t)config_q_dim(c), tmp_n = qd > (size_t)c->head_dim ? qd : (size_t)c->head_dim;
    float *tmp = permute ? malloc(tmp_n * (size_t)c->dim * sizeof(float)) : NULL;
    if (permute && !tmp) {
        free(head);
        return err_set("%s: out of memory", st_path);
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)at >> (8 * i));
    AtomicFile af;
    if (io_atomic_open(&af, st_path) != 0) {
        free(head), free(tmp);
        return -1;
    }
    io_atomic_write(&af, len, 8);
    io_atomic_write(&af, head, at);
    for (int i = 0; i < p->n_tensors && !af.failed; i++) {
        const TensorDesc *d = &p->t[i];
        size_t per = (size_t)d->rows * d->cols;
        int is_q = !strcmp(d->name, "wq"), is_k = !strcmp(d->name, "wk");
        int is_norm_qk = !strcmp(d->name, "q_norm") || !strcmp(d->name, "k_norm");
        for (int l = 0; l < (d->per_layer ? c->n_layers : 1); l++) {
            const float *w = p->data + d->offset + (size_t)l * per;
            if (permute && (is_q || is_k || is_norm_qk)) {
                int nh = is_q ? c->n_heads : is_k ? c->n_kv_heads : 1;
                permute_to_half(tmp, w, nh, c->head_dim, is_norm_qk ? 1 : (size_t)d->cols);
                w = tmp;
            }
            io_atomic_write(&af, w, per * sizeof(float));
        }
    }
    free(head);
    free(tmp);
    if (io_atomic_commit(&af) != 0) return -1;
    return write_config(c, cfg_path);
}

#else  // built without cJSON: HF weights need a JSON parser

static int no_json(const char *path) {
    return err_set("%s: this anetrain was built without cJSON, which Hugging Face files need "
                   "(install libcjson-dev and rebuild)", path);
}
int safetensors_open(SafeTensorsFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    return no_json(path);
}
void safetensors_close(SafeTensorsFile *f) { (void)f; }
const SafeTensor *safetensors_find(const SafeTensorsFile *f, const char *name) {
    (void)f, (void)name;
    return NULL;
}
void safetensors_read_f32(const SafeTensorsFile *f, const SafeTensor *t, float *dst) { (void)f, (void)t, (void)dst; }
int safetensors_load(Params *p, const char *path) {
    memset(p, 0, sizeof *p);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return err_set("%s: not a regular file (a Hugging Face model directory needs cJSON: install libcjson-dev "
                       "and rebuild)", path);
    return no_json(path);
}
int safetensors_save(const Params *p, const char *dir) {
    (void)p;
    return no_json(dir);
}
#endif
