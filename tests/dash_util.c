// dash_util: helpers of the dashboard tests (dash_util.h).
#include "dash_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *dash_canned_run(int steps) {
    size_t cap = 4096 + (size_t)steps * 400, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
        "{\"type\":\"start\",\"v\":1,\"model\":\"stories260k\",\"dim\":64,\"hidden\":172,\"layers\":5,\"heads\":8,"
        "\"kv_heads\":4,\"head_dim\":8,\"vocab\":512,\"vocab_rows\":512,\"params\":260032,\"seq\":256,"
        "\"pipeline\":\"cpu\",\"device\":null,\"precision\":\"fp32\",\"gemm\":\"blocked (in-tree)\",\"kernels\":0,"
        "\"accum\":4,\"steps\":%d,\"lr\":0.002,\"warmup\":20,\"min_lr_frac\":0.1,\"clip\":1,\"weight_decay\":0.1,"
        "\"tokens_per_update\":1024,\"flops_per_update\":2.6e9,\"data\":\"builtin\",\"val_data\":null,"
        "\"ckpt\":\"runs/c.bin\",\"seed\":42,\"resumed_at\":-1,\"t_ms\":43}\n", steps);
    for (int i = 1; i <= steps; i++) {
        double loss = 6.2 - 3.0 * i / steps;
        n += (size_t)snprintf(s + n, cap - n,
            "{\"type\":\"step\",\"step\":%d,\"loss\":%.4f,\"lr\":0.001,\"ms\":200,\"tokens_per_s\":5120,"
            "\"grad_norm\":0.5,\"loss_scale\":1,\"t_data\":0.01,\"t_fwd\":70,\"t_bwd\":120,\"t_optim\":2,"
            "\"rss_mb\":29.1,\"t_ms\":%d}\n", i, loss, 43 + 200 * i);
        if (i % 10 == 0)
            n += (size_t)snprintf(s + n, cap - n,
                "{\"type\":\"eval\",\"step\":%d,\"val_loss\":%.4f,\"val_ppl\":100,\"best\":true,\"t_ms\":%d}\n"
                "{\"type\":\"checkpoint\",\"step\":%d,\"path\":\"runs/c.best.bin\",\"t_ms\":%d}\n",
                i, loss + 0.05, 43 + 200 * i + 50, i, 43 + 200 * i + 60);
    }
    n += (size_t)snprintf(s + n, cap - n,
        "{\"type\":\"report\",\"steps\":%d,\"wall_ms\":%d,\"setup_ms\":43,\"compile_ms\":0,\"train_ms\":%d,"
        "\"ms_per_step\":200,\"tokens_per_s\":5120,\"gflops\":13,\"t_fwd\":%d,\"t_bwd\":%d,\"t_device\":0,"
        "\"t_staging\":0,\"t_cpu_ops\":0,\"t_dw_wait\":0,\"t_optim\":%d,\"t_data\":1,\"t_update_other\":1,"
        "\"t_eval\":10,\"t_ckpt\":5,\"device_evals\":0,\"kernels_compiled\":0,\"t_ms\":%d}\n",
        steps, 43 + 200 * steps + 100, 200 * steps, 70 * steps, 120 * steps, 2 * steps, 43 + 200 * steps + 100);
    return s;
}

void dash_feed(DashState *s, const char *text) {
    while (*text) {
        const char *e = strchr(text, '\n');
        size_t n = e ? (size_t)(e - text) : strlen(text);
        dash_state_line(s, text, n);
        text += n + (e != NULL);
    }
}

int dash_find(const Frame *f, const char *needle, int *col) {
    char row[8192];
    for (int y = 0; y < f->h; y++) {
        frame_row_utf8(f, y, row, sizeof row);
        const char *p = strstr(row, needle);
        if (!p) continue;
        if (col) {
            // count code points before the match
            int c = 0;
            for (const char *q = row; q < p; q++) c += ((unsigned char)*q & 0xC0) != 0x80;
            *col = c;
        }
        return y;
    }
    return -1;
}

void dash_dump(const Frame *f) {
    char row[8192];
    for (int y = 0; y < f->h; y++) {
        frame_row_utf8(f, y, row, sizeof row);
        fprintf(stderr, "|%s|\n", row);
    }
}

int dash_write(const char *path, const char *text, int append) {
    FILE *fp = fopen(path, append ? "ab" : "wb");
    if (!fp) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, fp) == n;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

int dash_braille(const Frame *f, int x, int y, int w, int h) {
    int n = 0;
    for (int j = y; j < y + h && j < f->h; j++)
        for (int i = x; i < x + w && i < f->w; i++) {
            uint32_t cp = f->cells[(size_t)j * f->w + i].cp;
            n += cp > 0x2800 && cp <= 0x28FF;
        }
    return n;
}
