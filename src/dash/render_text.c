// render_text: the generated-text and logs panels (render.h).
#include <stdio.h>
#include <string.h>

#include "dash/render.h"

static const FrameColor LOG_COLOR[] = {
    [DASH_LOG_INFO] = COL_DEFAULT, [DASH_LOG_STEP] = COL_STEP,   [DASH_LOG_EVAL] = COL_EVAL,
    [DASH_LOG_RESTART] = COL_RESTART, [DASH_LOG_WARN] = COL_WARN, [DASH_LOG_ERROR] = COL_ERROR,
};

// Wraps UTF-8 text into rows of w cells from (*row, *col), which it advances:
// newlines start a row; a word that does not fit moves to the next row when
// it fits on one.
static void wrap(Frame *f, int x, int y, int w, int rows, FrameColor c, const char *s, int *row, int *col) {
    size_t n = strlen(s), i = 0;
    while (i < n && *row < rows) {
        if (s[i] == '\n') {
            ++*row, *col = 0, i++;
            continue;
        }
        if (s[i] == ' ' && *col > 0) {
            size_t e = i + 1;
            while (e < n && s[e] != ' ' && s[e] != '\n') e++;
            if (*col + (int)(e - i) > w && (int)(e - i) <= w) {
                ++*row, *col = 0, i++;
                continue;
            }
        }
        if (*col >= w) ++*row, *col = 0;
        if (*row >= rows) break;
        uint32_t cp = frame_utf8_next(s, n, &i);
        if (cp < 0x20 || cp == 0x7F) cp = ' ';
        frame_put(f, x + (*col)++, y + *row, cp, c);
    }
}

void dash_render_sample(const DashState *s, Frame *f, int x, int y, int w, int h) {
    char title[64];
    int row = 0, col = 0;
    if (s->sample_text[0] || s->sample_prompt[0])
        snprintf(title, sizeof title, "generated text (update %lld)", s->sample_step);
    else snprintf(title, sizeof title, "generated text");
    frame_box(f, x, y, w, h, title);
    if (!s->sample_text[0] && !s->sample_prompt[0]) {
        wrap(f, x + 2, y + 1, w - 4, h - 2, COL_DIM,
             "none yet: train --sample-every N --tokenizer T writes samples; g asks for one", &row, &col);
        return;
    }
    // the prompt in its own colour, the continuation right after it (the
    // trainer's text may or may not repeat the prompt)
    const char *rest = s->sample_text;
    size_t pl = strlen(s->sample_prompt);
    if (pl && !strncmp(rest, s->sample_prompt, pl)) rest += pl;
    wrap(f, x + 2, y + 1, w - 4, h - 2, COL_VAL, s->sample_prompt, &row, &col);
    wrap(f, x + 2, y + 1, w - 4, h - 2, COL_DEFAULT, rest, &row, &col);
}

void dash_render_logs(const DashState *s, Frame *f, int x, int y, int w, int h) {
    char title[80];
    snprintf(title, sizeof title, "logs%s%s", s->paused ? " (paused)" : "", s->scroll ? " (scrolled back)" : "");
    frame_box(f, x, y, w, h, title);
    int rows = h - 2;
    for (int r = 0; r < rows; r++) {
        const DashLogLine *l = dash_state_log_line(s, (long long)s->scroll + (rows - 1 - r));
        if (l) frame_text(f, x + 2, y + 1 + r, w - 4, LOG_COLOR[l->kind], l->text);
    }
}
