/* File replacement for the exzarr core.
 *
 * Chunks are written to a temporary name and moved onto their key. Renaming onto an
 * existing file makes ext4 (auto_da_alloc) start writeback of the new file at once,
 * which costs about two thirds of the write speed; exchanging the two names with
 * renameat2(RENAME_EXCHANGE) is just as atomic for readers and avoids it. The old
 * contents, now under the temporary name, are then unlinked; if they are a directory,
 * the exchange is undone and the call fails with EISDIR, as rename() does.
 */
#ifndef EXZARR_FILEIO_H
#define EXZARR_FILEIO_H
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creating and renaming files from several threads at once is slower than from one on
 * common filesystems (directory locks, journal): 16,000 small files/s from one thread
 * fell to 2,500 from two on the machines exzarr is benchmarked on. Chunk compression
 * and the data writes run in parallel; creating and renaming take turns under this lock,
 * for chunk files under BIG_CHUNK_FILE bytes (_core.pyx): for big ones the data write
 * dwarfs them, and two threads waiting on each other cost 10% of a 1 MiB-chunk write. */
static pthread_mutex_t exzarr_file_lock = PTHREAD_MUTEX_INITIALIZER;

static void exzarr_lock_files(void) { pthread_mutex_lock(&exzarr_file_lock); }
static void exzarr_unlock_files(void) { pthread_mutex_unlock(&exzarr_file_lock); }

/* Reserve the blocks of a new chunk file of n bytes before its data is written.
 *
 * With delayed allocation, ext4 reserves space, looks up and inserts extents and
 * attaches buffer heads one 4 KiB block at a time while copying the data in; a file
 * whose blocks are already allocated (as unwritten extents) takes the copy with none
 * of that: 64 chunk files of 1 MiB written from two threads took 10-20% less time
 * here. Small files are left to delayed allocation, where the extra call would cost
 * more than it saves. A file system that cannot preallocate just writes as before:
 * failures are ignored, and a real lack of space fails the write itself. */
#define EXZARR_PREALLOCATE_MIN (256 * 1024)
static void exzarr_preallocate(int fd, size_t n) {
#if defined(__linux__)
    if (n >= EXZARR_PREALLOCATE_MIN)
        (void)fallocate(fd, 0, 0, (off_t)n);
#else
    (void)fd;
    (void)n;
#endif
}

/* `fresh` (may be NULL) carries what the caller's last replacement found: 1 when no
 * file was at its path. Then renameat2(RENAME_NOREPLACE) moves a new chunk into place
 * in one call; an exchange tried first would fail with ENOENT on every file of a new
 * array (a tenth of writing thousands of small chunks). */
static int exzarr_replace_file(const char *tmp, const char *path, int *fresh) {
    if (strcmp(tmp, path) == 0) {  /* exchanging a name with itself, then unlinking it */
        errno = EINVAL;
        return -1;
    }
#if defined(__linux__) && defined(RENAME_EXCHANGE) && defined(RENAME_NOREPLACE)
    if (fresh != NULL && *fresh) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            *fresh = 0;  /* something is there: exchange with it below */
        else if (errno != EINVAL && errno != ENOSYS && errno != EPERM)
            return -1;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
        struct stat t, p;
        /* Two spellings of one name (`/d//f`, `/d/f`): the exchange did nothing, and the
         * new chunk is in place; unlinking "the old one" would delete it. */
        if (lstat(tmp, &t) == 0 && lstat(path, &p) == 0 && t.st_ino == p.st_ino &&
            t.st_dev == p.st_dev)
            return 0;
        if (unlink(tmp) == 0 || (errno != EISDIR && errno != EPERM))
            return 0;  /* the new chunk is in place (a leftover old file is harmless) */
        /* A directory sat at the chunk's path and is now under the temporary name:
         * put it back and fail as rename() would, so nothing under it is lost. */
        renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE);
        errno = EISDIR;
        return -1;
    }
    if (errno == ENOENT && fresh != NULL)
        *fresh = 1;
    else if (errno != ENOENT && errno != EINVAL && errno != ENOSYS && errno != EPERM)
        return -1;
#else
    (void)fresh;
#endif
    return rename(tmp, path);
}
#endif
