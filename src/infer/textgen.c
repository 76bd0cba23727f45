// textgen: see textgen.h.
#include "infer/textgen.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "infer/generate.h"
#include "infer/sampler.h"

// The prompt's tokens (with BOS); at least one.
static int *encode_prompt(const Tokenizer *tok, const char *prompt, int *n) {
    int *ids = malloc(sizeof(int) * (strlen(prompt) + 3));
    if (!ids) {
        err_set("out of memory for the prompt");
        return NULL;
    }
    if (tokenizer_encode(tok, prompt, 1, 0, ids, n) != 0) {
        free(ids);
        return NULL;
    }
    return ids;
}

static int run(Generator *g, Sampler *s, const Tokenizer *tok, const int *ptoks, int n_ptoks, int steps,
               TextGenEmit emit, void *ctx, int *positions) {
    int token = ptoks[0], pos = 0;
    while (pos < steps) {
        const float *logits = gen_step(g, token, pos);
        if (!logits) return -1;
        // while inside the prompt the next token is forced, afterwards sampled
        int next = pos < n_ptoks - 1 ? ptoks[pos + 1] : sampler_sample(s, logits);
        pos++;
        if (next == TOK_BOS) break;  // BOS delimits sequences: the story is over
        const char *piece = tokenizer_decode(tok, token, next);
        if (tokenizer_piece_printable(piece)) emit(ctx, piece);
        token = next;
    }
    if (positions) *positions = pos;
    return 0;
}

int infer_generate(const Params *p, const Tokenizer *tok, const TextGenOptions *o, TextGenEmit emit, void *ctx,
                   int *positions) {
    int steps = o->max_tokens;
    if (steps <= 0 || steps > p->cfg.seq_len) steps = p->cfg.seq_len;
    int n_ptoks = 0;
    int *ptoks = encode_prompt(tok, o->prompt ? o->prompt : "", &n_ptoks);
    if (!ptoks) return -1;
    Generator g;
    Sampler s;
    int rc = -1;
    if (gen_init(&g, p, steps) == 0) {
        if (sampler_init(&s, p->cfg.vocab, o->temperature, o->topp, o->seed) == 0) {
            rc = run(&g, &s, tok, ptoks, n_ptoks, steps, emit, ctx, positions);
            sampler_free(&s);
        }
        gen_free(&g);
    }
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

int infer_generate_text(const Params *p, const Tokenizer *tok, const TextGenOptions *o, char *out, size_t cap) {
    if (cap == 0) return err_set("infer_generate_text: no room for the text");
    TextBuf b = {out, 0, cap};
    out[0] = 0;
    return infer_generate(p, tok, o, append, &b, NULL);
}
