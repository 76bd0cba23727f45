// llama2c: llama2.c model files, v0 (legacy) and v1 (reference.md B.1).
//
// Both versions store every weight family stacked over layers, (L, rows, cols),
// which is exactly our Params layout, so loading is one memcpy per tensor; only
// the order of the families differs (and v0 carries RoPE tables we skip).
// Headers and weights are little-endian; we read headers byte by byte and copy
// fp32 weights as they are (every supported host is little-endian).
#include "model/llama2c.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"

#define LLAMA2C_MAGIC 0x616b3432u  // "ak42" read as a little-endian uint32
enum { V0_HEADER = 28, V1_HEADER = 256 };

// Weight order of each version, in our tensor names. "freq_cis" is v0's pair of
// RoPE tables (seq_len, hd/2) cos then sin: written, skipped on read. wcls is
// present only when the classifier is separate.
static const char *const V0_ORDER[] = {"embed", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn",
                                       "w1", "w2", "w3", "rms_final", "freq_cis", "wcls"};
static const char *const V1_ORDER[] = {"rms_att", "rms_ffn", "rms_final", "embed", "wq", "wk",
                                       "wv", "wo", "w1", "w2", "w3", "wcls"};
#define N_ORDER(a) (sizeof(a) / sizeof((a)[0]))

// What a header says, once validated.
typedef struct {
    Config cfg;
    int version;          // 0 or 1
    size_t weights_at;    // byte offset of the first weight
    size_t freq_floats;   // v0: floats of both RoPE tables (seq_len * hd); v1: 0
    size_t expected;      // the exact file size the header implies
} Header;

static int32_t le_i32(const uint8_t *p) { return (int32_t)io_le32(p); }

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// The fixed parts of every llama2.c model (run.c hard-codes them).
static void config_llama2c(Config *c, const char *path, const int32_t h[7], int tied) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", base_name(path));
    c->dim = h[0];
    c->hidden = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab = h[5];
    c->seq_len = h[6];
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = ROPE_INTERLEAVED;
    c->qk_norm = 0;
    c->tied = tied;
    c->res_scale = 1.0f;
}

// Parses and validates the header of a mapped file of `size` bytes, including
// the exact size check. The config is validated before any size is computed,
// so a garbage header gives a clear error, never an overflow or a huge malloc.
static int header_parse(Header *h, const uint8_t *b, size_t size, const char *path) {
    memset(h, 0, sizeof *h);
    if (size == 0)
        return err_set("%s: file is empty; expected a llama2.c model (28-byte v0 or 256-byte v1 header, "
                       "then fp32 weights)", path);
    int32_t dims[7];
    int tied;
    if (size >= 4 && io_le32(b) == LLAMA2C_MAGIC) {
        if (size < V1_HEADER)
            return err_set("%s: llama2.c v1 header: expected 256 bytes, found a %zu-byte file", path, size);
        int32_t version = le_i32(b + 4);
        if (version == 2)
            return err_set("%s: llama2.c version 2 (int8 Q8_0, read by runq.c) is not supported; "
                           "expected version 1 (fp32); re-export with export.py --version 1", path);
        if (version != 1)
            return err_set("%s: llama2.c version %d is not supported; expected version 1", path, (int)version);
        for (int i = 0; i < 7; i++) dims[i] = le_i32(b + 8 + 4 * i);
        uint8_t shared = b[36];
        if (shared > 1)
            return err_set("%s: llama2.c v1 shared_classifier flag: expected 0 or 1, found %u", path, (unsigned)shared);
        tied = shared;
        h->version = 1;
        h->weights_at = V1_HEADER;
    } else {
        if (size < V0_HEADER)
            return err_set("%s: too short for a llama2.c model: expected at least a 28-byte header, found %zu "
                           "bytes", path, size);
        for (int i = 0; i < 7; i++) dims[i] = le_i32(b + 4 * i);
        // v0 has no magic: a header whose numbers no model has (beyond the
        // largest dims config_validate accepts) means this is some other file
        for (int i = 0; i < 7; i++)
            if (dims[i] > (1 << 22) || dims[i] < -(1 << 22))
                return err_set("%s: not a llama2.c model: no v1 \"ak42\" magic, and the first 28 bytes are not a "
                               "v0 header (dims %d %d %d %d %d %d %d)", path, (int)dims[0], (int)dims[1],
                               (int)dims[2], (int)dims[3], (int)dims[4], (int)dims[5], (int)dims[6]);
        // negative vocab_size is how v0 says "separate classifier"
        tied = dims[5] > 0;
        if (dims[5] < 0) dims[5] = -dims[5];
        h->version = 0;
        h->weights_at = V0_HEADER;
    }
    config_llama2c(&h->cfg, path, dims, tied);
    Config *c = &h->cfg;
    char src[4200];
    snprintf(src, sizeof src, "%s (%s llama2.c v%d header)", path, h->version ? "a" : "read as a", h->version);
    // llama2.c has no head_dim field: it is dim / n_heads, so that must divide.
    // A placeholder head_dim lets validation report sign, range and GQA
    // problems first, so the one message is about the first thing wrong.
    int divides = c->dim > 0 && c->n_heads > 0 && c->dim % c->n_heads == 0;
    if (!divides && c->dim > 0 && c->n_heads > 0) c->head_dim = 2;
    if (config_validate(c, src) != 0) return -1;
    if (!divides)
        return err_set("%s: dim (%d) must be divisible by n_heads (%d), since head_dim = dim / n_heads", src,
                       c->dim, c->n_heads);

    size_t floats;
    TensorDesc t[PARAMS_MAX_TENSORS];
    params_layout(c, t, &floats);
    if (h->version == 0) h->freq_floats = (size_t)c->seq_len * (size_t)c->head_dim;  // 2 tables of hd/2
    h->expected = h->weights_at + (floats + h->freq_floats) * sizeof(float);
    if (size != h->expected)
        return err_set("%s: expected %zu bytes for the llama2.c v%d model its header describes (dim %d, hidden %d, "
                       "layers %d, heads %d/%d, vocab %d, seq %d, %s classifier), found %zu bytes (%s by %zu)",
                       path, h->expected, h->version, c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads,
                       c->vocab, c->seq_len, c->tied ? "shared" : "separate", size,
                       size < h->expected ? "short" : "long",
                       size < h->expected ? h->expected - size : size - h->expected);
    return 0;
}

int llama2c_read_header(Config *cfg, int *version, const char *path) {
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    Header h;
    int rc = header_parse(&h, m.data, m.size, path);
    io_unmap(&m);
    if (rc != 0) return -1;
    *cfg = h.cfg;
    if (version) *version = h.version;
    return 0;
}

int llama2c_load(Params *p, const char *path) {
    memset(p, 0, sizeof *p);
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    Header h;
    if (header_parse(&h, m.data, m.size, path) != 0) {
        io_unmap(&m);
        return -1;
    }
    if (params_init(p, &h.cfg) != 0) {
        io_unmap(&m);
        return err_wrap("%s", path);
    }
    const char *const *order = h.version == 0 ? V0_ORDER : V1_ORDER;
    size_t n_order = h.version == 0 ? N_ORDER(V0_ORDER) : N_ORDER(V1_ORDER);
    size_t at = h.weights_at;
    for (size_t i = 0; i < n_order; i++) {
        if (!strcmp(order[i], "freq_cis")) {
            at += h.freq_floats * sizeof(float);
            continue;
        }
        const TensorDesc *d = params_find(p, order[i]);
        if (!d) continue;  // wcls of a tied model
        memcpy(p->data + d->offset, m.data + at, d->numel * sizeof(float));
        at += d->numel * sizeof(float);
    }
    CHECK_OR_ABORT(at == m.size);  // header_parse checked the size against this same layout
    io_unmap(&m);
    return 0;
}

// --- writing ------------------------------------------------------------------

// llama2.c fixes everything but the dims; refuse what would not load back as the same model.
static int check_expressible(const Config *c, const char *path) {
    const char *pre = "cannot write a llama2.c file";
    if (c->qk_norm) return err_set("%s: %s: the model uses QK-norm, which llama2.c has no weights for", path, pre);
    if (c->rope_layout != ROPE_INTERLEAVED)
        return err_set("%s: %s: the model uses rotate-half RoPE; llama2.c rotates interleaved pairs", path, pre);
    if ((long long)c->head_dim * c->n_heads != c->dim)
        return err_set("%s: %s: head_dim %d != dim / n_heads (%d / %d); llama2.c has no head_dim field", path, pre,
                       c->head_dim, c->dim, c->n_heads);
    if (c->rope_theta != 10000.0f)
        return err_set("%s: %s: rope_theta is %g; llama2.c fixes it at 10000", path, pre, c->rope_theta);
    if (c->norm_eps != 1e-5f)
        return err_set("%s: %s: RMSNorm eps is %g; llama2.c fixes it at 1e-5", path, pre, c->norm_eps);
    if (c->res_scale != 1.0f)
        return err_set("%s: %s: residual scale is %g; llama2.c has none (1)", path, pre, c->res_scale);
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

// v0's RoPE tables as llama2.c's model.py precompute_freqs_cis(dim // n_heads,
// seq_len) makes them in fp32: freqs = 1 / 10000^(arange(0, hd, 2) / hd) and
// angle(t, i) = t * freqs[i], both rounded to fp32 like torch does; then the
// cos table (seq_len, hd/2) and the sin table. cos/sin are evaluated in double
// and rounded once (correctly rounded but for rare ties), which is within one
// fp32 ulp of any torch build's values (torch's own fp32 cos/sin depend on the
// build's vector math library). Readers (run.c) skip these tables anyway.
static int write_freq_cis(AtomicFile *af, int head_dim, int seq_len) {
    int half = head_dim / 2;
    float *freq = malloc(sizeof(float) * half), *row = malloc(sizeof(float) * half);
    if (!freq || !row) {
        free(freq), free(row);
        return err_set("%s: out of memory", af->path);
    }
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        freq[i] = 1.0f / (float)pow(10000.0, (double)e);
    }
    int rc = 0;
    for (int table = 0; table < 2 && rc == 0; table++)
        for (int t = 0; t < seq_len && rc == 0; t++) {
            for (int i = 0; i < half; i++) {
                float angle = (float)t * freq[i];
                row[i] = (float)(table == 0 ? cos((double)angle) : sin((double)angle));
            }
            rc = io_atomic_write(af, row, sizeof(float) * half);
        }
    free(freq);
    free(row);
    return rc;
}

int llama2c_save(const Params *p, const char *path, int version) {
    const Config *c = &p->cfg;
    if (version != 0 && version != 1)
        return err_set("%s: cannot write llama2.c version %d (expected 0 or 1)", path, version);
    if (check_expressible(c, path) != 0) return -1;

    uint8_t head[V1_HEADER];
    memset(head, 0, sizeof head);
    int32_t dims[7] = {c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->seq_len};
    size_t head_len;
    if (version == 0) {
        if (!c->tied) dims[5] = -dims[5];  // v0 signals a separate classifier by a negative vocab
        for (int i = 0; i < 7; i++) put_le32(head + 4 * i, (uint32_t)dims[i]);
        head_len = V0_HEADER;
    } else {
        put_le32(head, LLAMA2C_MAGIC);
        put_le32(head + 4, 1);
        for (int i = 0; i < 7; i++) put_le32(head + 8 + 4 * i, (uint32_t)dims[i]);
        head[36] = (uint8_t)(c->tied ? 1 : 0);
        head_len = V1_HEADER;
    }

    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) return -1;
    io_atomic_write(&af, head, head_len);
    const char *const *order = version == 0 ? V0_ORDER : V1_ORDER;
    size_t n_order = version == 0 ? N_ORDER(V0_ORDER) : N_ORDER(V1_ORDER);
    for (size_t i = 0; i < n_order && !af.failed; i++) {
        if (!strcmp(order[i], "freq_cis")) {
            if (write_freq_cis(&af, c->head_dim, c->seq_len) != 0 && !af.failed) {
                io_atomic_abort(&af);
                return -1;
            }
            continue;
        }
        const TensorDesc *d = params_find(p, order[i]);
        if (!d) continue;  // wcls of a tied model
        io_atomic_write(&af, p->data + d->offset, d->numel * sizeof(float));
    }
    return io_atomic_commit(&af);
}
