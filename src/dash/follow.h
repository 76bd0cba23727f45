// follow: reads a log file as it grows (tail -F for JSON lines).
//
//   Follower f;
//   follow_init(&f, "runs/dash.jsonl");
//   every tick: follow_poll(&f, on_line, ctx, &restarted);
//
// Each complete line (ending in '\n') is handed to the callback once, without
// its newline. A partial last line (a writer mid-write) is kept and completed
// by the next read. The file may not exist yet (polls find nothing until it
// does). When the file is truncated (its size drops below what was read) or
// replaced (another inode under the path: a rename, a delete and re-create),
// reading starts over from byte 0 and *restarted is set, so the caller can
// clear what it derived from the old contents first.
// A line longer than FOLLOW_MAX_LINE is skipped whole (counted in `dropped`)
// instead of growing the buffer without bound.
#pragma once
#include <stddef.h>
#include <sys/types.h>

enum { FOLLOW_MAX_LINE = 1 << 20 };

typedef void (*FollowLineFn)(void *ctx, const char *line, size_t len);

typedef struct {
    char path[4096];
    int fd;           // -1 while the file is missing
    dev_t dev;
    ino_t ino;
    off_t offset;     // bytes consumed from the current file
    char *part;       // the partial last line
    size_t part_len, part_cap;
    int skipping;     // inside an over-long line: drop bytes up to its newline
    long long lines, dropped;
} Follower;

// 0, or -1 (path too long). Opens nothing yet.
int follow_init(Follower *f, const char *path);
// Reads what is new. Returns the number of lines delivered (>= 0), or -1 on a
// read error (err_msg(); the follower stays usable).
int follow_poll(Follower *f, FollowLineFn fn, void *ctx, int *restarted);
void follow_free(Follower *f);
