/*
 * fd.c -- what both reactor backends share: duplicating and closing fds
 * (see reactor.h).
 */

#include "reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int asr_dup(int fd)
{
    int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return r < 0 ? -errno : r;
}

int asr_close(int fd)
{
    /* Never retry close() on EINTR: on Linux the fd is already gone. */
    return close(fd) < 0 ? -errno : 0;
}
