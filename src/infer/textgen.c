// textgen: see textgen.h.
#include "infer/textgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/timer.h"
#include "infer/generate.h"
#include "infer/generate_device.h"
#include "infer/sampler.h"

// The prompt's tokens (after the separator); at least one.
static int *encode_prompt(TextTok *tok, const char *prompt, int *n) {
    int *ids;
    size_t k;
    if (texttok_encode(tok, prompt, strlen(prompt), 1, &ids, &k) != 0) return NULL;
    if (k == 0 || k > (size_t)1 << 30) {
        free(ids);
        err_set("the prompt encodes to %zu tokens", k);
        return NULL;
    }
    *n = (int)k;
    return ids;
}

// logits with every id outside the allowed set at -inf (allowed NULL: logits as they are)
static const float *restrict_logits(const float *logits, float *scratch, const unsigned char *allowed, int n) {
    if (!allowed) return logits;
    for (int i = 0; i < n; i++) scratch[i] = allowed[i] ? logits[i] : -INFINITY;
    return scratch;
}

static int run(Generator *g, Sampler *s, TextTok *tok, const int *ptoks, int n_ptoks, int steps,
               const unsigned char *allowed, float *scratch, TextGenEmit emit, void *ctx, int *positions) {
    int token = ptoks[0], pos = 0;
    TextDecoder dec;
    texttok_decoder_init(&dec, tok, token);
    while (pos < steps) {
        const float *logits = gen_step(g, token, pos);
        if (!logits) return -1;
        // while inside the prompt the next token is forced, afterwards sampled
        int next = pos < n_ptoks - 1 ? ptoks[pos + 1] : sampler_sample(s, restrict_logits(logits, scratch, allowed, s->vocab));
        pos++;
        if (next == tok->sep_id) break;  // the separator delimits documents: the story is over
        const char *piece = texttok_decode(&dec, next);
        if (piece[0]) emit(ctx, piece);
        token = next;
    }
    const char *rest = texttok_decoder_flush(&dec);
    if (rest[0]) emit(ctx, rest);
    if (positions) *positions = pos;
    return 0;
}

int infer_generate(const Params *p, TextTok *tok, const TextGenOptions *o, TextGenEmit emit, void *ctx,
                   int *positions) {
    int steps = o->max_tokens;
    if (steps <= 0 || steps > p->cfg.seq_len) steps = p->cfg.seq_len;
    int n_ptoks = 0;
    int *ptoks = encode_prompt(tok, o->prompt ? o->prompt : "", &n_ptoks);
    if (!ptoks) return -1;
    Generator g;
    Sampler s;
    int rc = -1;
    GenDevice *dev = NULL;
    const int on_device = o->device && strcmp(o->device, "cpu") != 0;
    const double t0 = time_ms();
    if (on_device && gen_device_init(&dev, p, o->device, 0) != 0) {
        free(ptoks);
        return -1;
    }
    if (o->compile_ms) *o->compile_ms = on_device ? time_ms() - t0 : 0.0;
    if (gen_init(&g, p, steps) == 0) {
        g.dev = dev;
        // a padded vocab (Qwen3: 151936 rows, 151669 tokens) samples only real ids
        int n_ids = tok->vocab_size < p->cfg.vocab ? tok->vocab_size : p->cfg.vocab;
        unsigned char *allowed = o->ids ? calloc((size_t)n_ids, 1) : NULL;
        float *scratch = o->ids ? malloc(sizeof(float) * (size_t)n_ids) : NULL;
        int n_allowed = 0;
        for (int i = 0; allowed && i < o->n_ids; i++)
            if (o->ids[i] >= 0 && o->ids[i] < n_ids) n_allowed += !allowed[o->ids[i]], allowed[o->ids[i]] = 1;
        if (o->ids && (!allowed || !scratch)) err_set("out of memory for the sampler's id set");
        else if (o->ids && n_allowed == 0) err_set("sampling: none of the %d allowed ids is a token", o->n_ids);
        else if (sampler_init(&s, n_ids, o->temperature, o->topp, o->seed) == 0) {
            rc = run(&g, &s, tok, ptoks, n_ptoks, steps, allowed, scratch, emit, ctx, positions);
            sampler_free(&s);
        }
        free(allowed);
        free(scratch);
        gen_free(&g);
    }
    gen_device_free(dev);
    free(ptoks);
    return rc;
}

typedef struct {
    char *out;
    size_t len, cap;
} TextBuf;

static void append(void *ctx, const char *piece) {
    TextBuf *b = ctx;
    size_t n = strlen(piece);
    if (b->len + n >= b->cap) n = b->cap - 1 - b->len;
    memcpy(b->out + b->len, piece, n);
    b->len += n;
    b->out[b->len] = 0;
}

int infer_generate_text(const Params *p, TextTok *tok, const TextGenOptions *o, char *out, size_t cap) {
    if (cap == 0) return err_set("infer_generate_text: no room for the text");
    TextBuf b = {out, 0, cap};
    out[0] = 0;
    return infer_generate(p, tok, o, append, &b, NULL);
}
