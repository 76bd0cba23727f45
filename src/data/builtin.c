#include "data/builtin.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/err.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/docs.h"
#include "data/texttok.h"

int builtin_prepare(const char *dir, char *data_path, size_t n) {
    char tok_path[600];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    snprintf(data_path, n, "%s/builtin-data.bin", dir);
    // reuse a previous run's files when both are present and valid
    if (access(tok_path, R_OK) == 0 && access(data_path, R_OK) == 0) {
        TokenFile tf;
        if (tokens_open(&tf, data_path, BUILTIN_VOCAB) == 0) {
            tokens_close(&tf);
            return 0;
        }
        err_clear();
    }
    if (corpus_write_tokenizer(tok_path) != 0) return -1;
    TextTok tk;
    if (texttok_open(&tk, tok_path, BUILTIN_VOCAB) != 0) return -1;
    char *text = NULL;
    size_t len = 0, docs = 0;
    TokenIds ids = {0};
    int rc = -1;
    if (corpus_generate(BUILTIN_SEED, BUILTIN_STORIES, &text, &len) != 0) goto done;
    if (docs_tokenize(&tk, text, len, DOCS_EOT, &ids, &docs) != 0) goto done;
    rc = tokens_write(data_path, ids.ids, ids.n, BUILTIN_VOCAB);
done:
    free(text);
    token_ids_free(&ids);
    texttok_free(&tk);
    return rc;
}
