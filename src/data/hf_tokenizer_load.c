// hf_tokenizer_load: building a tokenizer's tables (hf_tokenizer_internal.h)
// from tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json),
// given as files or a directory.
#include "data/hf_tokenizer_internal.h"

#include <pthread.h>

#ifdef USE_CJSON
// The Qwen2 split regex, implied for vocab.json + merges.txt (Qwen2Tokenizer's PRETOKENIZE_REGEX).
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
#endif

// --- building a tokenizer ----------------------------------------------------------------
// (only the JSON loaders build one: without cJSON there is nothing to build)
#ifdef USE_CJSON

// GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// other 68 are moved to U+0100.. in byte order, so every byte has a visible
// character (Ġ = U+0120 = space).
static void byte_map(int cp_of_byte[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp_of_byte[b] = keep ? b : 256 + k++;
    }
}

static size_t table_size(size_t n) {
    size_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

// Appends bytes to the blob; returns the offset or -1 (out of memory).
static long blob_add(HfTokenizer *t, const char *s, size_t n) {
    if (t->nbytes + n > t->capbytes) {
        size_t c = t->capbytes ? t->capbytes : 1 << 20;
        while (c < t->nbytes + n) c *= 2;
        if (c > UINT32_MAX) return err_set("tokenizer: token bytes exceed 4 GiB");
        char *p = realloc(t->bytes, c);
        if (!p) return err_set("out of memory for the tokenizer's tokens");
        t->bytes = p;
        t->capbytes = c;
    }
    memcpy(t->bytes + t->nbytes, s, n);
    t->nbytes += n;
    return (long)(t->nbytes - n);
}

static void piece_insert(HfTokenizer *t, int id) {
    size_t i = hash_bytes(t->bytes + t->off[id], t->len[id]) & t->piece_mask;
    while (t->piece_tab[i] >= 0) i = (i + 1) & t->piece_mask;
    t->piece_tab[i] = id;
}

// A later duplicate of a merge replaces the earlier one, as the tokenizers
// library's HashMap collect does.
static void merge_insert(HfTokenizer *t, int a, int b, uint32_t rank, int id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t i = hash_u64(key) & t->merge_mask;
    while (t->merge_key[i] != 0 && t->merge_key[i] != key) i = (i + 1) & t->merge_mask;
    t->merge_key[i] = key;
    t->merge_rank[i] = rank;
    t->merge_id[i] = id;
}


// Largest id accepted: far above any real vocabulary (Qwen3 151669), low enough
// that a wrong number cannot make us allocate gigabytes.
enum { MAX_ID = 1 << 24 };

static HfTokenizer *tok_new(void) {
    HfTokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        err_set("out of memory for a tokenizer");
        return NULL;
    }
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return t;
}

static int ensure_ids(HfTokenizer *t, int n) {
    if (n <= t->n_ids) return 0;
    uint32_t *off = realloc(t->off, (size_t)n * sizeof *off);
    if (off) t->off = off;
    uint32_t *len = off ? realloc(t->len, (size_t)n * sizeof *len) : NULL;
    if (len) t->len = len;
    uint8_t *kind = len ? realloc(t->kind, (size_t)n) : NULL;
    if (!kind) return err_set("out of memory for %d token ids", n);
    t->kind = kind;
    memset(kind + t->n_ids, KIND_NONE, (size_t)(n - t->n_ids));
    t->n_ids = n;
    return 0;
}

static int set_token(HfTokenizer *t, int id, const char *s, size_t n, int kind, const char *name) {
    if (id < 0 || id >= MAX_ID) return err_set("%s: expected token ids in [0, %d), found %d", name, MAX_ID, id);
    if (ensure_ids(t, id + 1) != 0) return -1;
    if (t->kind[id] != KIND_NONE) {
        // an added token may restate a vocab token (same id, same bytes)
        if (kind != KIND_VOCAB && t->len[id] == n && !memcmp(t->bytes + t->off[id], s, n)) {
            if (t->kind[id] == KIND_VOCAB || kind == KIND_SPECIAL) t->kind[id] = (uint8_t)kind;
            return 1;
        }
        return err_set("%s: expected unique token ids, found id %d twice (\"%.*s\" and \"%.*s\")", name, id,
                       (int)(t->len[id] > 40 ? 40 : t->len[id]), t->bytes + t->off[id], (int)(n > 40 ? 40 : n), s);
    }
    long off = blob_add(t, s, n);
    if (off < 0) return -1;
    t->off[id] = (uint32_t)off;
    t->len[id] = (uint32_t)n;
    t->kind[id] = (uint8_t)kind;
    return 0;
}

// A byte-level token string (UTF-8 of the GPT-2 byte characters) -> raw bytes
// in out (capacity n). Returns the byte count, or -1 naming the bad character.
static int byte_of_cp[324];  // the inverse of byte_map, built once
static pthread_once_t byte_of_cp_once = PTHREAD_ONCE_INIT;
static void byte_of_cp_init(void) {
    int cp[256];
    byte_map(cp);
    for (int i = 0; i < 324; i++) byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) byte_of_cp[cp[b]] = b;
}

static long unmap_bytes(const char *s, size_t n, char *out, const char *name, const char *what) {
    pthread_once(&byte_of_cp_once, byte_of_cp_init);
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, j = 0, bad;
    while (i < n) {
        size_t k = hf_utf8_seq(u + i, n - i, &bad);
        int c = -1;
        if (k == 1) c = u[i];
        else if (k == 2) c = (u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F);
        if (k == 0) return err_set("%s: %s \"%.*s\" is not valid UTF-8", name, what, (int)(n > 40 ? 40 : n), s);
        if (c < 0 || c >= 324 || byte_of_cp[c] < 0)
            return err_set("%s: expected byte-level characters (the GPT-2 byte map) in %s \"%.*s\", found "
                           "\"%.*s\"", name, what, (int)(n > 40 ? 40 : n), s, (int)k, s + i);
        out[j++] = (char)byte_of_cp[c];
        i += k;
    }
    return (long)j;
}

// Longest token read: far above any real one, and what a decoder's buffer holds.
enum { TOKEN_BYTES_MAX = 1024 };

static int add_vocab(HfTokenizer *t, const char *s, size_t n, int id, const char *name) {
    char buf[TOKEN_BYTES_MAX];
    if (n > sizeof buf) return err_set("%s: vocab token of %zu bytes (at most %zu)", name, n, sizeof buf);
    long m = unmap_bytes(s, n, buf, name, "vocab token");
    if (m < 0) return -1;
    if (m == 0) return err_set("%s: expected non-empty vocab tokens, found \"\" (id %d)", name, id);
    return set_token(t, id, buf, (size_t)m, KIND_VOCAB, name) < 0 ? -1 : 0;
}

// After the vocab: the byte -> token table and the lookup of tokens by bytes
// (a token twice under two ids is refused).
static int index_vocab(HfTokenizer *t, const char *name) {
    free(t->piece_tab);
    size_t size = table_size((size_t)t->n_ids);
    t->piece_tab = malloc(size * sizeof *t->piece_tab);
    if (!t->piece_tab) return err_set("out of memory for the vocab index");
    memset(t->piece_tab, 0xff, size * sizeof *t->piece_tab);
    t->piece_mask = size - 1;
    for (int id = 0; id < t->n_ids; id++) {
        if (t->kind[id] != KIND_VOCAB) continue;
        int other = piece_find(t, t->bytes + t->off[id], t->len[id]);
        if (other >= 0)
            return err_set("%s: expected each vocab token once, found the same token under ids %d and %d", name,
                           other, id);
        piece_insert(t, id);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if ((t->byte_id[b] = piece_find(t, &c, 1)) < 0)
            return err_set("%s: expected a vocab token for every byte (byte-level BPE), found none for byte 0x%02x",
                           name, b);
    }
    return 0;
}

static int alloc_merges(HfTokenizer *t, size_t n) {
    size_t size = table_size(n);
    t->merge_key = calloc(size, sizeof *t->merge_key);
    t->merge_rank = malloc(size * sizeof *t->merge_rank);
    t->merge_id = malloc(size * sizeof *t->merge_id);
    if (!t->merge_key || !t->merge_rank || !t->merge_id) return err_set("out of memory for %zu merges", n);
    t->merge_mask = size - 1;
    return 0;
}

// Merge `rank`: tokens a and b (byte-level strings) into the token a+b; all
// three must be in the vocab, as the tokenizers library requires.
static int add_merge(HfTokenizer *t, const char *a, size_t na, const char *b, size_t nb, uint32_t rank,
                     const char *name) {
    char buf[2048];
    if (na + nb > sizeof buf) return err_set("%s: merge %u is %zu bytes long", name, rank, na + nb);
    long ma = unmap_bytes(a, na, buf, name, "merge token");
    long mb = ma < 0 ? -1 : unmap_bytes(b, nb, buf + ma, name, "merge token");
    if (mb < 0) return -1;
    int ia = piece_find(t, buf, (size_t)ma), ib = piece_find(t, buf + ma, (size_t)mb);
    int im = piece_find(t, buf, (size_t)(ma + mb));
    if (ia < 0 || ib < 0)
        return err_set("%s: merge %u \"%.*s %.*s\": expected tokens of the vocab, found \"%.*s\", which is not in it",
                       name, rank, (int)na, a, (int)nb, b, ia < 0 ? (int)na : (int)nb, ia < 0 ? a : b);
    if (im < 0)
        return err_set("%s: merge %u \"%.*s %.*s\": expected its result \"%.*s%.*s\" in the vocab, found it missing",
                       name, rank, (int)na, a, (int)nb, b, (int)na, a, (int)nb, b);
    merge_insert(t, ia, ib, rank, im);
    return 0;
}

static int add_added(HfTokenizer *t, const char *s, size_t n, int id, int special, const char *name) {
    if (n == 0) return err_set("%s: expected non-empty added tokens, found \"\" (id %d)", name, id);
    if (n > TOKEN_BYTES_MAX)
        return err_set("%s: added token %d of %zu bytes (at most %d)", name, id, n, (int)TOKEN_BYTES_MAX);
    int rc = set_token(t, id, s, n, special ? KIND_SPECIAL : KIND_ADDED, name);
    if (rc < 0) return -1;
    Added *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return err_set("out of memory for the added tokens");
    t->added = a;
    a[t->n_added++] = (Added){t->off[id], t->len[id], id};
    t->added_first[(uint8_t)s[0]] = 1;
    return 0;
}

static int added_longer(const void *x, const void *y) {
    const Added *a = x, *b = y;
    return a->len != b->len ? (a->len < b->len ? 1 : -1) : (a->id > b->id) - (a->id < b->id);
}

// Last step of every loader: added tokens longest first, the regex, the cache.
static int finish(HfTokenizer *t, const char *regex, const char *name) {
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_longer);
#ifdef USE_PCRE2
    int code;
    PCRE2_SIZE at;
    t->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err_set("%s: the pre-tokenizer regex does not compile at offset %zu: %s", name, (size_t)at,
                       (const char *)msg);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;  // the interpreter when JIT is unavailable
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!t->md) return err_set("out of memory for the regex match data");
    return 0;
#else
    (void)regex;
    return err_set("%s: built without PCRE2", name);
#endif
}

// --- loaders: JSON (cJSON) --------------------------------------------------------------------

static cJSON *parse_json(const char *s, size_t n, const char *name) {
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        long at = e && e >= s && e <= s + n ? (long)(e - s) : -1;
        err_set("%s: expected JSON, found a syntax error or truncation at byte %ld of %zu", name, at, n);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        err_set("%s: expected a JSON object", name);
        return NULL;
    }
    return j;
}

static int json_id(const cJSON *v, int *id) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= MAX_ID ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    *id = (int)v->valuedouble;
    return 0;
}

static int load_vocab(HfTokenizer *t, const cJSON *vocab, const char *name) {
    if (!cJSON_IsObject(vocab)) return err_set("%s: expected \"vocab\" to be an object of token: id", name);
    int max = -1, id;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        if (json_id(v, &id) != 0)
            return err_set("%s: vocab token \"%.40s\": expected an id in [0, %d), found %s", name, v->string, MAX_ID,
                           cJSON_IsNumber(v) ? "a number out of range" : "no number");
        if (id > max) max = id;
    }
    if (max < 0) return err_set("%s: expected a vocab, found an empty one", name);
    if (ensure_ids(t, max + 1) != 0) return -1;
    for (const cJSON *v = vocab->child; v; v = v->next)
        if (add_vocab(t, v->string, strlen(v->string), (int)v->valuedouble, name) != 0) return -1;
    return index_vocab(t, name);
}

static int load_json_merges(HfTokenizer *t, const cJSON *merges, const char *name) {
    if (!cJSON_IsArray(merges)) return err_set("%s: expected \"merges\" to be a list", name);
    if (alloc_merges(t, (size_t)cJSON_GetArraySize(merges)) != 0) return -1;
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(m)) {  // legacy "a b"
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return err_set("%s: merge %u: expected \"a b\" (two tokens, one space), found \"%.60s\"", name, rank,
                               m->valuestring);
            a = m->valuestring, na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {  // tokenizers >= 0.20: ["a", "b"]
            a = m->child->valuestring, na = strlen(a), b = m->child->next->valuestring, nb = strlen(b);
        } else {
            return err_set("%s: merge %u: expected \"a b\" or [\"a\", \"b\"]", name, rank);
        }
        if (na == 0 || nb == 0) return err_set("%s: merge %u: expected two non-empty tokens", name, rank);
        if (add_merge(t, a, na, b, nb, rank, name) != 0) return -1;
    }
    return 0;
}

// One added token object: {"id"?, "content", "special"}; id_str is the key of
// tokenizer_config.json's added_tokens_decoder.
static int load_added_one(HfTokenizer *t, const cJSON *o, const char *id_str, const char *name) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(o, "special");
    int id = -1;
    if (id_str) {
        char *end;
        long v = strtol(id_str, &end, 10);
        if (*id_str && !*end && v >= 0 && v < MAX_ID) id = (int)v;
    } else if (json_id(cJSON_GetObjectItemCaseSensitive(o, "id"), &id) != 0) {
        id = -1;
    }
    if (!cJSON_IsObject(o) || !cJSON_IsString(content) || id < 0)
        return err_set("%s: expected added tokens as {\"id\": N, \"content\": \"...\"}, found a malformed one", name);
    return add_added(t, content->valuestring, strlen(content->valuestring), id, cJSON_IsTrue(special), name);
}

static const char *json_type(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

static int normalizer_nfc(const cJSON *n, int *nfc, const char *name) {
    *nfc = 0;
    if (!n || cJSON_IsNull(n)) return 0;
    if (!strcmp(json_type(n), "NFC")) return *nfc = 1, 0;
    if (!strcmp(json_type(n), "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        for (const cJSON *e = list ? list->child : NULL; e; e = e->next) {
            if (strcmp(json_type(e), "NFC")) goto unsupported;
            *nfc = 1;
        }
        return 0;
    }
unsupported:
    return err_set("%s: normalizer \"%s\": anetrain's byte-level BPE supports NFC or none", name, json_type(n));
}

static int bytelevel_ok(const cJSON *o, int want_regex) {
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
    int use_regex = !ur || cJSON_IsTrue(ur);
    return !strcmp(json_type(o), "ByteLevel") && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space")) &&
           use_regex == want_regex;
}

// The split regex of the pre-tokenizer: Sequence[Split(Regex, Isolated),
// ByteLevel(use_regex false)] (Qwen2/3, Llama-3) or ByteLevel(use_regex true)
// (GPT-2's own regex). *regex points into the JSON tree.
static int pre_tokenizer_regex(const cJSON *p, const char **regex, const char *name) {
    static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    if (p && bytelevel_ok(p, 1)) return *regex = GPT2_REGEX, 0;
    const cJSON *list = p ? cJSON_GetObjectItemCaseSensitive(p, "pretokenizers") : NULL;
    if (p && !strcmp(json_type(p), "Sequence") && cJSON_GetArraySize(list) == 2 && bytelevel_ok(list->child->next, 0)) {
        const cJSON *s = list->child;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "pattern"), "Regex");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(s, "behavior");
        if (!strcmp(json_type(s), "Split") && cJSON_IsString(pat) && cJSON_IsString(beh) &&
            !strcmp(beh->valuestring, "Isolated") && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "invert")))
            return *regex = pat->valuestring, 0;
    }
    return err_set("%s: pre_tokenizer \"%s\": anetrain's byte-level BPE supports Sequence[Split(Regex, Isolated), "
                   "ByteLevel] (Qwen2/3) or ByteLevel with its regex (GPT-2)", name, p ? json_type(p) : "null");
}

static int model_ok(const cJSON *m, HfTokenizer *t, const char *name) {
    if (!cJSON_IsObject(m) || strcmp(json_type(m), "BPE"))
        return err_set("%s: expected model.type \"BPE\", found \"%s\"", name, cJSON_IsObject(m) ? json_type(m) : "none");
    const char *strs[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, strs[i]);
        if (cJSON_IsString(v) && v->valuestring[0])
            return err_set("%s: model.%s \"%s\" is not supported (byte-level BPE has none)", name, strs[i], v->valuestring);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "byte_fallback")))
        return err_set("%s: model.byte_fallback is not supported (a byte-level BPE needs none)", name);
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "ignore_merges"));
    return 0;
}

static int from_json_tree(HfTokenizer *t, const cJSON *root, const char *name) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *regex = NULL;
    if (model_ok(model, t, name) != 0) return -1;
    if (normalizer_nfc(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &t->nfc, name) != 0) return -1;
    if (pre_tokenizer_regex(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &regex, name) != 0) return -1;
    if (load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), name) != 0) return -1;
    if (load_json_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), name) != 0) return -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return err_set("%s: expected \"added_tokens\" to be a list", name);
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next)
        if (load_added_one(t, a, NULL, name) != 0) return -1;
    return finish(t, regex, name);
}
#endif

int hf_tokenizer_from_json(HfTokenizer **out, const char *json, size_t n, const char *name) {
    const char *missing;
    *out = NULL;
    if (!hf_tokenizer_available(&missing))
        return err_set("%s: a Hugging Face tokenizer needs %s; this anetrain was built without it (install it, then "
                       "make: the build finds it)", name, missing);
#ifdef USE_CJSON
    cJSON *root = parse_json(json, n, name);
    if (!root) return -1;
    HfTokenizer *t = tok_new();
    int rc = t ? from_json_tree(t, root, name) : -1;
    cJSON_Delete(root);
    if (rc != 0) {
        hf_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
#else
    (void)json, (void)n;
    return -1;
#endif
}

#ifdef USE_CJSON
// merges.txt: an optional "#version" line, then one "a b" per line (blank lines skipped).
static int load_merges_txt(HfTokenizer *t, const char *s, size_t n, const char *name) {
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    if (alloc_merges(t, lines) != 0) return -1;
    uint32_t rank = 0;
    size_t lineno = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n, z = e;
        lineno++;
        if (z > i && s[z - 1] == '\r') z--;
        const char *line = s + i;
        size_t len = z - i;
        i = e + 1;
        if (len == 0 || (lineno == 1 && len >= 8 && !memcmp(line, "#version", 8))) continue;
        const char *sp = memchr(line, ' ', len);
        if (!sp || sp == line || sp == line + len - 1 || memchr(sp + 1, ' ', (size_t)(line + len - sp - 1)))
            return err_set("%s:%zu: expected \"a b\" (two tokens, one space), found \"%.*s\"", name, lineno,
                           (int)(len > 60 ? 60 : len), line);
        if (add_merge(t, line, (size_t)(sp - line), sp + 1, (size_t)(line + len - sp - 1), rank++, name) != 0)
            return -1;
    }
    return 0;
}

static int load_config_added(HfTokenizer *t, const char *s, size_t n, const char *name) {
    cJSON *root = parse_json(s, n, name);
    if (!root) return -1;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "added_tokens_decoder");
    int rc = 0;
    if (dec && !cJSON_IsObject(dec)) rc = err_set("%s: expected \"added_tokens_decoder\" to be an object", name);
    for (const cJSON *a = dec ? dec->child : NULL; a && rc == 0; a = a->next)
        rc = load_added_one(t, a, a->string, name);
    cJSON_Delete(root);
    return rc;
}
#endif

int hf_tokenizer_from_vocab_merges(HfTokenizer **out, const char *vocab, size_t nv, const char *merges, size_t nm,
                                   const char *config, size_t nc, const char *name) {
    const char *missing;
    *out = NULL;
    if (!hf_tokenizer_available(&missing))
        return err_set("%s: a Hugging Face tokenizer needs %s; this anetrain was built without it (install it, then "
                       "make: the build finds it)", name, missing);
#ifdef USE_CJSON
    char vname[600], mname[600], cname[600];
    snprintf(vname, sizeof vname, "%s/vocab.json", name);
    snprintf(mname, sizeof mname, "%s/merges.txt", name);
    snprintf(cname, sizeof cname, "%s/tokenizer_config.json", name);
    HfTokenizer *t = tok_new();
    cJSON *v = t ? parse_json(vocab, nv, vname) : NULL;
    int rc = v ? load_vocab(t, v, vname) : -1;
    cJSON_Delete(v);
    if (rc == 0) rc = load_merges_txt(t, merges, nm, mname);
    if (rc == 0 && config) rc = load_config_added(t, config, nc, cname);
    t ? t->nfc = 1 : 0;  // Qwen2Tokenizer normalizes to NFC
    if (rc == 0) rc = finish(t, QWEN2_REGEX, name);
    if (rc != 0) {
        hf_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
#else
    (void)vocab, (void)nv, (void)merges, (void)nm, (void)config, (void)nc;
    return -1;
#endif
}

// --- files and directories ----------------------------------------------------------------

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static int open_json_file(HfTokenizer **out, const char *path) {
    char *s;
    size_t n;
    if (io_read_text(path, IO_TEXT_MAX, &s, &n) != 0) return -1;
    int rc = hf_tokenizer_from_json(out, s, n, path);
    free(s);
    return rc;
}

// vocab_path, merges_path: the files given (NULL: dir/vocab.json, dir/merges.txt);
// tokenizer_config.json is read from dir when it is there.
static int open_vocab_merges(HfTokenizer **out, const char *dir, const char *vocab_path, const char *merges_path) {
    char vp[700], mp[700], cp[700];
    snprintf(vp, sizeof vp, "%s", vocab_path ? vocab_path : "");
    if (!vocab_path) snprintf(vp, sizeof vp, "%s/vocab.json", dir);
    snprintf(mp, sizeof mp, "%s", merges_path ? merges_path : "");
    if (!merges_path) snprintf(mp, sizeof mp, "%s/merges.txt", dir);
    snprintf(cp, sizeof cp, "%s/tokenizer_config.json", dir);
    char *v = NULL, *m = NULL, *c = NULL;
    size_t nv, nm, nc = 0;
    int rc = -1;
    if (!exists(vp) || !exists(mp)) {
        if (vocab_path)
            err_set("%s: a Hugging Face vocab.json (by its content) needs merges.txt beside it, found no %s", vp, mp);
        else
            err_set("%s: expected vocab.json and merges.txt there, found no %s", dir,
                    exists(vp) ? "merges.txt" : "vocab.json");
        goto done;
    }
    if (io_read_text(vp, IO_TEXT_MAX, &v, &nv) != 0 || io_read_text(mp, IO_TEXT_MAX, &m, &nm) != 0) goto done;
    if (exists(cp) && io_read_text(cp, IO_TEXT_MAX, &c, &nc) != 0) goto done;
    rc = hf_tokenizer_from_vocab_merges(out, v, nv, m, nm, c, nc, dir);
done:
    free(v);
    free(m);
    free(c);
    return rc;
}

static int open_dir(HfTokenizer **out, const char *dir) {
    char p[700];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (exists(p)) return open_json_file(out, p);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    if (exists(p)) return open_vocab_merges(out, dir, NULL, NULL);
    return err_set("%s: expected a Hugging Face tokenizer directory (tokenizer.json, or vocab.json + merges.txt), "
                   "found neither", dir);
}

// Which HF file a JSON file is, by its top-level keys.
static const char *json_kind(const char *s, size_t n) {
    const char *p = s;
    size_t len = n > 4096 ? 4096 : n;
    // the keys of interest are in the first object level; a cheap look at the
    // head is enough to route (the real parse happens once, in the loader)
    if (memmem(p, len, "\"architectures\"", 15) || memmem(p, len, "\"model_type\"", 12)) return "model";
    if (memmem(p, len, "\"added_tokens_decoder\"", 22) || memmem(p, len, "\"tokenizer_class\"", 17)) return "config";
    if (memmem(p, len, "\"model\"", 7) || memmem(p, len, "\"added_tokens\"", 14) || memmem(p, len, "\"version\"", 9))
        return "tokenizer";
    return "vocab";
}

int hf_tokenizer_open(HfTokenizer **out, const char *path) {
    *out = NULL;
    const char *missing;
    char p[700];
    if (is_dir(path)) {  // a directory without the files is not a tokenizer, whatever the build
        snprintf(p, sizeof p, "%s/tokenizer.json", path);
        int any = exists(p);
        snprintf(p, sizeof p, "%s/vocab.json", path);
        if (!any && !exists(p))
            return err_set("%s: expected a Hugging Face tokenizer directory (tokenizer.json, or vocab.json + "
                           "merges.txt), found neither", path);
    }
    if (!hf_tokenizer_available(&missing))  // before looking for sibling files: the first thing to fix
        return err_set("%s: a Hugging Face tokenizer needs %s; this anetrain was built without it (install it, then "
                       "make: the build finds it)", path, missing);
    if (is_dir(path)) return open_dir(out, path);
    char *s;
    size_t n;
    if (io_read_text(path, IO_TEXT_MAX, &s, &n) != 0) return -1;
    char dir[600];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    int rc;
    if (!hf_tokenizer_sniff((const uint8_t *)s, n) && memchr(s, 0, n))
        rc = err_set("%s: expected a Hugging Face tokenizer file (tokenizer.json, vocab.json, merges.txt or "
                     "tokenizer_config.json), found binary data", path);
    else if (n >= 1 && !(n >= 8 && !memcmp(s, "#version", 8)) && hf_tokenizer_sniff((const uint8_t *)s, n)) {
        const char *kind = json_kind(s, n);
        if (!strcmp(kind, "tokenizer")) rc = hf_tokenizer_from_json(out, s, n, path);
        else if (!strcmp(kind, "config")) rc = open_dir(out, dir);
        else if (!strcmp(kind, "model"))
            rc = err_set("%s: expected a tokenizer file, found a model's config.json (give tokenizer.json or the "
                         "directory)", path);
        else rc = open_vocab_merges(out, dir, path, NULL);
    } else {
        rc = open_vocab_merges(out, dir, NULL, path);  // merges.txt: its vocab.json is beside it
    }
    free(s);
    return rc;
}
