#include "cli/args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_default(const Flag *f) {
    switch (f->type) {
    case FLAG_INT: printf(" (default %d)", *(int *)f->ptr); break;
    case FLAG_LONG: printf(" (default %lld)", *(long long *)f->ptr); break;
    case FLAG_FLOAT: printf(" (default %g)", *(float *)f->ptr); break;
    case FLAG_STR: {
        const char *s = *(const char **)f->ptr;
        if (s) printf(" (default %s)", s);
        break;
    }
    case FLAG_BOOL: break;
    }
}

void args_usage(const Flag *flags, const char *usage, const char *about) {
    printf("usage: anetrain %s\n", usage);
    if (about) printf("\n%s\n", about);
    printf("\nflags:\n");
    for (const Flag *f = flags; f->name; f++) {
        char left[64];
        const char *arg = f->type == FLAG_BOOL ? "" : f->type == FLAG_STR ? " S" : f->type == FLAG_FLOAT ? " F" : " N";
        if (f->alias) snprintf(left, sizeof left, "%s, %s%s", f->alias, f->name, arg);
        else snprintf(left, sizeof left, "    %s%s", f->name, arg);
        printf("  %-26s %s", left, f->help);
        print_default(f);
        printf("\n");
    }
    printf("  %-26s %s\n", "-h, --help", "show this help");
}

static int set_value(const Flag *f, const char *v, const char *cmd) {
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case FLAG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || !*v || *end || x < INT_MIN || x > INT_MAX) goto bad;
        *(int *)f->ptr = (int)x;
        return 0;
    }
    case FLAG_LONG: {
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end) goto bad;
        *(long long *)f->ptr = x;
        return 0;
    }
    case FLAG_FLOAT: {
        float x = strtof(v, &end);
        if (errno || !*v || *end || !isfinite(x)) goto bad;
        *(float *)f->ptr = x;
        return 0;
    }
    case FLAG_STR: *(const char **)f->ptr = v; return 0;
    case FLAG_BOOL: return 0;
    }
bad:
    fprintf(stderr, "anetrain %s: invalid value '%s' for %s (expected %s); see --help\n", cmd, v, f->name,
            f->type == FLAG_FLOAT ? "a finite number" : "an integer");
    return -1;
}

int args_parse(int argc, char **argv, const Flag *flags, const char *usage, const char *about,
               const char **positional, int max_pos, int *n_pos) {
    const char *cmd = argv[0];
    if (n_pos) *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            args_usage(flags, usage, about);
            return 1;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (positional && n_pos && *n_pos < max_pos) {
                positional[(*n_pos)++] = a;
                continue;
            }
            fprintf(stderr, "anetrain %s: unexpected argument '%s'; see --help\n", cmd, a);
            return -1;
        }
        // --flag=value form
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const Flag *f = flags;
        for (; f->name; f++)
            if ((strlen(f->name) == nlen && !strncmp(f->name, a, nlen)) ||
                (f->alias && strlen(f->alias) == nlen && !strncmp(f->alias, a, nlen)))
                break;
        if (!f->name) {
            fprintf(stderr, "anetrain %s: unknown flag '%s'; see --help\n", cmd, a);
            return -1;
        }
        if (f->type == FLAG_BOOL) {
            if (eq) {
                fprintf(stderr, "anetrain %s: %s takes no value\n", cmd, f->name);
                return -1;
            }
            *(int *)f->ptr = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "anetrain %s: %s needs a value; see --help\n", cmd, f->name);
            return -1;
        }
        if (set_value(f, v, cmd) != 0) return -1;
    }
    return 0;
}

int args_given(int argc, char **argv, const char *name, const char *alias) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t n = strcspn(a, "=");
        if ((strlen(name) == n && !strncmp(a, name, n)) || (alias && strlen(alias) == n && !strncmp(a, alias, n)))
            return 1;
    }
    return 0;
}
