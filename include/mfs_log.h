/* mfs_log: the one place library code reports problems.
 *
 * Two mechanisms, for two kinds of failure:
 * - A call that fails on bad input fills a caller-owned `mfs_err` with one line naming the file and
 *   the reason, and returns a negative errno. The caller decides whether to print it: the tools
 *   print it on stderr, the daemon logs it once.
 * - Failures found later, on a path with no caller to return a message to (a corrupt frame met by a
 *   read, a source changed under a reader), go to the log sink. The default sink writes to stderr;
 *   the daemon switches to syslog when it detaches.
 *
 * The library never writes to stdout and never exits. Thread safety: mfs_log may be called from
 * any thread; mfs_log_set_sink must be called before other threads start.
 */
#ifndef MFS_LOG_H
#define MFS_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define MFS_ERR_MAX 512

typedef struct mfs_err {
    char msg[MFS_ERR_MAX];
} mfs_err;

enum mfs_log_level { MFS_LOG_ERROR = 0, MFS_LOG_WARN = 1, MFS_LOG_INFO = 2, MFS_LOG_DEBUG = 3 };

/* Fill `err` (NULL allowed: then nothing is recorded). The caller returns its own negative
 * errno. The message should read "FILE: reason". */
void mfs_err_set(mfs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix an existing message with "what: ", e.g. a shard name in front of a parse error. */
void mfs_err_prefix(mfs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef void (*mfs_log_sink)(enum mfs_log_level level, const char *line, void *user);

/* Messages above `max_level` are dropped. The default is stderr, MFS_LOG_INFO. */
void mfs_log_set_sink(mfs_log_sink sink, void *user, enum mfs_log_level max_level);
void mfs_log(enum mfs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mfs_vlog(enum mfs_log_level level, const char *fmt, va_list ap);

#endif
