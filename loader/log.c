#include "mfs_log.h"

#include <stdio.h>
#include <string.h>

static mfs_log_sink g_sink;
static void *g_sink_user;
static enum mfs_log_level g_max_level = MFS_LOG_INFO;

/* Messages quote names from files (tensor names, keys, shard names): a newline or an escape
 * sequence in one must not make a message two lines, or a fake one, in a log or a terminal. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            *s = '?';
}

void mfs_err_set(mfs_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
}

void mfs_err_prefix(mfs_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char line[MFS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t at = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (at + 2 < sizeof line) {
        memcpy(line + at, ": ", 2);
        at += 2;
        size_t rest = strnlen(err->msg, sizeof err->msg);
        if (rest > sizeof line - 1 - at)
            rest = sizeof line - 1 - at;
        memcpy(line + at, err->msg, rest);
        at += rest;
    }
    line[at] = '\0';
    one_line(line);
    memcpy(err->msg, line, at + 1);
}

void mfs_log_set_sink(mfs_log_sink sink, void *user, enum mfs_log_level max_level)
{
    g_sink = sink;
    g_sink_user = user;
    g_max_level = max_level;
}

void mfs_vlog(enum mfs_log_level level, const char *fmt, va_list ap)
{
    if (level > g_max_level)
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    one_line(line);
    if (g_sink) {
        g_sink(level, line, g_sink_user);
        return;
    }
    static const char *const names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "modelfs: %s: %s\n", names[level], line);
}

void mfs_log(enum mfs_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mfs_vlog(level, fmt, ap);
    va_end(ap);
}
