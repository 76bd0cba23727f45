// anetrain tokenize: text files in, one token file out (llama2.c tinystories.py style).
//
// Each document is stripped of surrounding whitespace and encoded after the
// tokenizer's separator — BOS for llama2.c, as tinystories.py's process_shard
// does; <|endoftext|> for Hugging Face tokenizers (Qwen has no BOS) — and
// without EOS; documents are concatenated. --raw encodes each file as one
// sequence with nothing added. The output is raw uint16 when the vocab fits,
// else the anetrain token format (src/data/dataset.h).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/io.h"
#include "core/timer.h"
#include "data/corpus.h"
#include "data/docs.h"
#include "data/dataset.h"
#include "data/texttok.h"

enum { MAX_INPUTS = 1024 };

static int tokenize_file(TextTok *tok, const char *path, const char *format, int raw, TokenIds *out, size_t *docs,
                         const char **used, size_t *bytes) {
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    *bytes += m.size;
    const char *t = (const char *)m.data;
    DocSplit split = !strcmp(format, "eot") ? DOCS_EOT : !strcmp(format, "blank") ? DOCS_BLANK : docs_detect(t, m.size);
    *used = raw ? "nothing: --raw" : split == DOCS_EOT ? "<|endoftext|> lines" : "blank lines";
    int rc = raw ? docs_tokenize_raw(tok, t, m.size, out) : docs_tokenize(tok, t, m.size, split, out, docs);
    if (raw) *docs = 1;
    io_unmap(&m);
    if (rc != 0) err_wrap("%s", path);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *out_path = NULL, *format = "auto";
    int vocab = 0, raw = 0;
    Flag flags[] = {
        {"--tokenizer", "-z", FLAG_STR, &tok_path, "llama2.c tokenizer.bin; a Hugging Face tokenizer (Qwen3): its "
                                                    "directory, tokenizer.json, vocab.json or merges.txt; or 'builtin' "
                                                    "(the built-in 512-piece vocabulary of the story corpus)"},
        {"--output", "-o", FLAG_STR, &out_path, "token file to write"},
        {"--vocab", "-v", FLAG_INT, &vocab, "vocab size of a tokenizer.bin; 0 = every entry of the file (32000 for "
                                            "Llama 2); a Hugging Face tokenizer has its own"},
        {"--format", "-f", FLAG_STR, &format, "how documents are separated: auto, eot or blank"},
        {"--raw", NULL, FLAG_BOOL, &raw, "each file as one sequence: no document splitting, nothing added"},
        {0},
    };
    const char *inputs[MAX_INPUTS];
    int n_in = 0;
    int rc = args_parse(argc, argv, flags, "tokenize --tokenizer FILE -o OUT.bin [--vocab N] INPUT...",
                        "Turns text files into one token file. Every document is stripped and encoded after the\n"
                        "tokenizer's separator and with no EOS, and the documents are concatenated: BOS (id 1) for a\n"
                        "llama2.c tokenizer.bin, as llama2.c's tinystories.py does; <|endoftext|> for a Hugging Face\n"
                        "tokenizer (Qwen has no BOS). --raw encodes each file whole, with nothing added.\n"
                        "Documents are found in either format (--format auto picks per file):\n"
                        "  eot    TinyStories-train.txt: stories end with a line \"<|endoftext|>\"\n"
                        "  blank  text exported from HF parquet rows: documents separated by blank lines\n"
                        "         (note that a blank line inside a row also separates documents)\n"
                        "The output is headerless uint16 (llama2.c .bin) when vocab <= 65536, else the anetrain\n"
                        "token format with uint32 ids (Qwen3: 151669 ids).",
                        inputs, MAX_INPUTS, &n_in);
    if (rc > 0) return 0;
    if (rc < 0) return 2;
    if (!tok_path || !out_path || n_in == 0) {
        fprintf(stderr, "anetrain tokenize: --tokenizer, -o and at least one INPUT are required; see --help\n");
        return 2;
    }
    if (strcmp(format, "auto") && strcmp(format, "eot") && strcmp(format, "blank")) {
        fprintf(stderr, "anetrain tokenize: --format '%s' must be auto, eot or blank\n", format);
        return 2;
    }
    if (vocab < 0) {
        fprintf(stderr, "anetrain tokenize: --vocab %d must be >= 0\n", vocab);
        return 2;
    }

    // The built-in vocabulary goes through a temporary tokenizer.bin, so it is read
    // exactly as any other.
    char tmp_tok[64] = "";
    int builtin = !strcmp(tok_path, "builtin");
    TextTok tok;
    int have_tok = 0, ok = 0;
    TokenIds ids = {0};
    size_t total_docs = 0, bytes = 0;
    if (builtin) {
        const char *dir = getenv("TMPDIR");
        snprintf(tmp_tok, sizeof tmp_tok, "%s/anetrain-tok-XXXXXX", dir && strlen(dir) < 40 ? dir : "/tmp");
        int fd = mkstemp(tmp_tok);
        if (fd < 0) {
            err_set("%s: cannot create a temporary file", tmp_tok);
            tmp_tok[0] = '\0';
            goto done;
        }
        close(fd);
        if (corpus_write_tokenizer(tmp_tok) != 0) goto done;
        tok_path = tmp_tok;
        if (vocab == 0) vocab = CORPUS_VOCAB;
    }
    if (io_check_output(out_path) != 0) goto done;  // before the work, not after it
    if (texttok_open(&tok, tok_path, vocab) != 0) goto done;
    have_tok = 1;
    vocab = tok.vocab_size;
    if (!raw && tok.sep_id < 0) {
        err_set("%s: this tokenizer has no <|endoftext|> token to separate documents (use --raw)", tok_path);
        goto done;
    }

    double t0 = time_ms();
    for (int i = 0; i < n_in; i++) {
        size_t docs = 0, toks0 = ids.n;
        const char *split = "";
        if (tokenize_file(&tok, inputs[i], format, raw, &ids, &docs, &split, &bytes) != 0) goto done;
        total_docs += docs;
        printf("%s: %zu %s (split by %s), %zu tokens\n", inputs[i], docs, raw ? "sequence" : "documents", split,
               ids.n - toks0);
    }
    double secs = (time_ms() - t0) / 1e3;
    if (ids.n == 0) {
        err_set("%s: no documents found in the input", inputs[0]);
        goto done;
    }
    if (tokens_write(out_path, ids.ids, ids.n, vocab) != 0) goto done;
    printf("%zu documents, %zu tokens (%.1f per document) in %.3f s, %.0f tokens/s, %.1f MB/s\n", total_docs, ids.n,
           (double)ids.n / (double)total_docs, secs, secs > 0 ? ids.n / secs : 0.0,
           secs > 0 ? bytes / 1e6 / secs : 0.0);
    printf("wrote %s (%s, vocab %d, %s%s%s)\n", out_path, vocab <= 65536 ? "raw uint16" : "anetrain uint32", vocab,
           texttok_kind_name(&tok), raw ? "" : ", documents after ", raw ? "" : tok.sep_name);
    ok = 1;
done:
    if (!ok) fprintf(stderr, "anetrain tokenize: %s\n", err_msg());
    if (have_tok) texttok_free(&tok);
    if (tmp_tok[0]) unlink(tmp_tok);
    token_ids_free(&ids);
    return ok ? 0 : 1;
}
