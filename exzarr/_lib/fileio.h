/* File creation and replacement for the exzarr core.
 *
 * A new chunk is written as an unnamed file in its folder (O_TMPFILE) and linked at its
 * key when complete (exzarr_open_unnamed, exzarr_publish_unnamed): readers never see it
 * half written, a crash leaves nothing behind, and the folder changes once instead of
 * twice (create a temporary name, rename it), which made writing 4,096 small files
 * 1.3x (fresh file system) to 2.6x (right after many files were removed) faster.
 * Where that is not possible, and to replace an existing chunk, chunks are written to a
 * temporary name and moved onto their key. Renaming onto an
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
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/falloc.h>
#include <sys/vfs.h>
#endif

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
 * here. FALLOC_FL_KEEP_SIZE leaves the size to the data: a file caught by a crash
 * before writeback is as short as without it (a plain fallocate sets the size at once,
 * and such a file would read back as zeros, a valid uncompressed chunk). Only on ext4
 * and XFS: btrfs does not compress data written into preallocated extents. Small files
 * are left to delayed allocation, where the extra calls would cost more than they save.
 * Failures are ignored: a real lack of space fails the write itself. */
#define EXZARR_PREALLOCATE_MIN (256 * 1024)
#define EXZARR_EXT4_MAGIC 0xEF53
#define EXZARR_XFS_MAGIC 0x58465342
static void exzarr_preallocate(int fd, size_t n) {
#if defined(__linux__) && defined(FALLOC_FL_KEEP_SIZE)
    struct statfs fs;
    if (n < EXZARR_PREALLOCATE_MIN || fstatfs(fd, &fs) != 0)
        return;
    if (fs.f_type == EXZARR_EXT4_MAGIC || fs.f_type == EXZARR_XFS_MAGIC)
        (void)fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)n);
#else
    (void)fd;
    (void)n;
#endif
}

/* Open a new unnamed file for writing in the folder of `path`; -1 with errno:
 * EOPNOTSUPP where the kernel or file system has no O_TMPFILE (whatever it said: old
 * kernels say EISDIR or EINVAL), ENOENT where the folder is missing. */
static int exzarr_open_unnamed(const char *path) {
#if defined(__linux__) && defined(O_TMPFILE)
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n;
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        n = (size_t)(slash - path);
        if (n == 0)
            n = 1;  /* a file at the root: the folder is "/" */
        if (n >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0 && (errno == EISDIR || errno == EINVAL))
        errno = EOPNOTSUPP;
    return fd;
#else
    (void)path;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

/* Whether errno, after linking an unnamed file failed, says that it cannot be linked
 * here at all: a file system without links, a security policy, no /proc. The chunk is
 * then written under a named temporary file instead, where a real problem (a folder
 * you may not write) is reported as such. */
static int exzarr_link_unsupported(int err) {
    return err == EOPNOTSUPP || err == EPERM || err == EACCES || err == EXDEV ||
           err == EMLINK || err == ENOSYS || err == EINVAL;
}

/* Give the unnamed file `fd` the name `path`, where nothing may be yet. 0, or -1 with
 * errno: EEXIST when something is there, EOPNOTSUPP when the file cannot be linked
 * (AT_EMPTY_PATH refused and no /proc to link through).
 *
 * AT_EMPTY_PATH links the descriptor itself. Recent kernels allow it to the process
 * that opened the file (6.18 does, to a user without privileges), older ones only to
 * root; where refused it fails at once with ENOENT, before any lookup, and the link
 * goes through /proc/self/fd, which costs a walk through /proc more (a third of
 * linkat's time in a profile of 1 MiB chunk writes). */
static int exzarr_link_unnamed(int fd, const char *path) {
#if defined(__linux__) && defined(O_TMPFILE)
    char proc[64];
    struct stat st;
    if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != ENOENT && errno != EPERM)
        return -1;  /* EEXIST, a full disk: the target's */
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != ENOENT || lstat(proc, &st) == 0)
        return -1;  /* the failure is the target's (a missing folder, say) */
    errno = EOPNOTSUPP;
    return -1;
#else
    (void)fd;
    (void)path;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

static int exzarr_replace_file(const char *tmp, const char *path, int *fresh);

/* Sync the folder `dir` (its entries: names linked, renamed, removed or made in it).
 * 0, or -1 with errno; a file system that cannot sync folders (EINVAL) is no failure.
 * The package's one folder sync: Python calls it as exzarr._core.sync_folder. */
static int exzarr_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    if (fd < 0)
        return -1;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = -1;
    {
        int e = errno;
        close(fd);
        errno = e;
    }
    return rc;
}

/* Sync the folder of `path` (exzarr_fsync_dir), unless it is `last`, the folder synced
 * before, which then becomes this one (`cap` bytes). 0, or -1 with errno. */
static int exzarr_sync_folder(const char *path, char *last, size_t cap) {
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);
    char dir[PATH_MAX];
    if (n == 0)
        n = slash == NULL ? 0 : 1;  /* "f" is in ".", "/f" in "/" */
    if (n + 1 > sizeof dir || n + 1 > cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (n == 0)
        strcpy(dir, ".");
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    if (strcmp(dir, last) == 0)
        return 0;
    if (exzarr_fsync_dir(dir) != 0)
        return -1;
    memcpy(last, dir, strlen(dir) + 1);
    return 0;
}

/* Put the complete unnamed file `fd` at `path`: linked there when nothing is at the
 * path, else linked at `tmp` and exchanged with what is there (see
 * exzarr_replace_file). 0; -1 with errno; or -2 when the file could not be linked
 * (exzarr_link_unsupported): nothing changed, and the caller writes the chunk again
 * under a named temporary file. */
static int exzarr_publish_unnamed(int fd, const char *tmp, const char *path, int *fresh) {
    if (exzarr_link_unnamed(fd, path) == 0)
        return 0;
    if (errno != EEXIST)
        return exzarr_link_unsupported(errno) ? -2 : -1;
    *fresh = 0;
    if (exzarr_link_unnamed(fd, tmp) != 0)
        return exzarr_link_unsupported(errno) ? -2 : -1;
    if (exzarr_replace_file(tmp, path, fresh) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
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
