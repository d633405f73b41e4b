/* A NumPy memory handler (NEP 49) for the arrays big reads return.
 *
 * NumPy takes large arrays from malloc, which maps them at an address that is page
 * aligned but not 2 MiB aligned. With transparent huge pages the kernel can then back
 * only the 2 MiB-aligned part of the array with huge pages; the head and tail, about
 * 2 MiB in all, take one fault per 4 KiB page: some 500 faults for every array, a few
 * percent of reading a 64 MiB array from warm chunk files.
 *
 * This handler maps each allocation on its own, with the data 2 MiB aligned, and asks
 * for huge pages as NumPy does (madvise): only a last part short of 2 MiB stays in
 * small pages (none for the usual power-of-two arrays). The end of the page before the data holds
 * a tag, the mapping's length and the data's capacity, so free and realloc need no table. calloc takes a fresh mapping,
 * which the kernel zeroes. Only arrays exzarr creates for a read of at least
 * EXZARR_HUGE_MIN bytes use it (array.new_array, _core.empty_huge); they are ordinary arrays owning their
 * data, freed with this handler by NumPy whoever drops them last.
 *
 * Freed mappings are kept for the next read of about their size, as malloc keeps freed
 * memory for the next allocation. A fresh mapping costs the kernel one zeroed page per
 * page touched: for a 64 MiB read of fast-decoding chunks that is a third of the time
 * (zeroing 64 MiB, faulting it in), and a pipeline reading slice after slice pays it
 * again for every slice. The pool is bounded:
 *   - at most EXZARR_KEEP_SLOTS mappings and exzarr_keep_limit bytes (settable; 0 turns
 *     the pool off and unmaps what it holds);
 *   - a mapping idle for EXZARR_KEEP_SECONDS is unmapped at the next big allocation or
 *     free that finds the pool free (there is no timer: a process that stops reading
 *     keeps up to the limit mapped, as malloc keeps its heap);
 *   - kept memory is given MADV_FREE, so under memory pressure the kernel takes it back
 *     without swapping (its pages then come back zeroed, which changes nothing: the
 *     contents of malloc's memory are undefined). It still counts in RSS until then.
 * A kept mapping serves a request of at most its size and at least 4/5 of it. calloc
 * never takes one, and mappings under EXZARR_HUGE_MIN (a realloc's shrunk arrays) are
 * never kept. The pool is guarded by a try-lock: a caller finding it busy maps or
 * unmaps on its own, so no allocation or free ever waits. A forked child whose parent
 * had the lock taken starts with an empty pool (what it held stays mapped, unused).
 */
#ifndef EXZARR_HUGEALLOC_H
#define EXZARR_HUGEALLOC_H
#include <Python.h>
#include <pthread.h>
#include <sched.h>
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EXZARR_HUGE_ALIGN ((size_t)2 << 20)
#define EXZARR_HUGE_PAGE ((size_t)4096)
#define EXZARR_HUGE_MIN ((size_t)4 << 20)
#define EXZARR_HUGE_MAGIC 0x6578686775706167ULL /* "exhugpag" */

typedef struct {
    uint64_t magic;
    size_t map_len;   /* the mapping starts one page before the data */
    size_t capacity;  /* bytes usable from the data pointer */
} exzarr_huge_header;

static inline exzarr_huge_header* exzarr_huge_head(void* p) {
    return (exzarr_huge_header*)((char*)p - sizeof(exzarr_huge_header));
}

/* ---- the pool of freed mappings ---- */

#define EXZARR_KEEP_SLOTS 4
#define EXZARR_KEEP_SECONDS 10.0

typedef struct {
    char* data;   /* NULL: an empty slot */
    double freed; /* CLOCK_MONOTONIC seconds */
} exzarr_kept;

static exzarr_kept exzarr_keep[EXZARR_KEEP_SLOTS];
static size_t exzarr_keep_limit = (size_t)512 << 20;
static size_t exzarr_keep_held = 0;
static int exzarr_keep_busy = 0;

static inline size_t exzarr_huge_cap(void* p) { return exzarr_huge_head(p)->capacity; }

static void exzarr_huge_unmap(char* data) {
    exzarr_huge_head(data)->magic = 0;
    munmap(data - EXZARR_HUGE_PAGE, exzarr_huge_head(data)->map_len);
}

/* In a forked child only the forking thread runs: a lock another thread held is reset,
 * with the pool it guarded forgotten (that thread may have been halfway through it). */
static void exzarr_keep_after_fork(void) {
    int i;
    if (__atomic_load_n(&exzarr_keep_busy, __ATOMIC_RELAXED)) {
        for (i = 0; i < EXZARR_KEEP_SLOTS; i++)
            exzarr_keep[i].data = NULL;
        __atomic_store_n(&exzarr_keep_held, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&exzarr_keep_busy, 0, __ATOMIC_RELEASE);
    }
}

static pthread_once_t exzarr_keep_once = PTHREAD_ONCE_INIT;

static void exzarr_keep_register(void) { pthread_atfork(NULL, NULL, exzarr_keep_after_fork); }

static inline int exzarr_keep_lock(void) {
    pthread_once(&exzarr_keep_once, exzarr_keep_register);
    return __atomic_exchange_n(&exzarr_keep_busy, 1, __ATOMIC_ACQUIRE) == 0;
}

static inline void exzarr_keep_unlock(void) {
    __atomic_store_n(&exzarr_keep_busy, 0, __ATOMIC_RELEASE);
}

static double exzarr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Under the lock: take slot i's mapping out of the pool. */
static char* exzarr_keep_take(int i) {
    char* d = exzarr_keep[i].data;
    exzarr_keep[i].data = NULL;
    __atomic_store_n(&exzarr_keep_held, exzarr_keep_held - exzarr_huge_cap(d), __ATOMIC_RELAXED);
    return d;
}

/* Under the lock: move the mappings idle too long, or beyond a limit of `room` bytes
 * less than the limit, into `out` (to be unmapped after the lock is released). */
static int exzarr_keep_expire(double now, size_t room, char** out) {
    int i, n = 0, oldest;
    for (i = 0; i < EXZARR_KEEP_SLOTS; i++)
        if (exzarr_keep[i].data && now - exzarr_keep[i].freed > EXZARR_KEEP_SECONDS)
            out[n++] = exzarr_keep_take(i);
    while (exzarr_keep_held > 0 &&
           exzarr_keep_held + room > __atomic_load_n(&exzarr_keep_limit, __ATOMIC_RELAXED)) {
        oldest = -1;
        for (i = 0; i < EXZARR_KEEP_SLOTS; i++)
            if (exzarr_keep[i].data && (oldest < 0 || exzarr_keep[i].freed < exzarr_keep[oldest].freed))
                oldest = i;
        out[n++] = exzarr_keep_take(oldest);
    }
    return n;
}

static void exzarr_unmap_all(char** list, int n) {
    int i;
    for (i = 0; i < n; i++)
        exzarr_huge_unmap(list[i]);
}

/* A kept mapping for `cap` bytes (page rounded), or NULL. */
static char* exzarr_keep_get(size_t cap) {
    char* victims[2 * EXZARR_KEEP_SLOTS];
    char* got = NULL;
    int i, best = -1, n;
    size_t c;
    if (!exzarr_keep_lock())
        return NULL;
    n = exzarr_keep_expire(exzarr_now(), 0, victims);
    for (i = 0; i < EXZARR_KEEP_SLOTS; i++) {
        if (!exzarr_keep[i].data)
            continue;
        c = exzarr_huge_cap(exzarr_keep[i].data);
        if (c >= cap && c - cap <= c / 5 && (best < 0 || c < exzarr_huge_cap(exzarr_keep[best].data)))
            best = i;
    }
    if (best >= 0)
        got = exzarr_keep_take(best);
    exzarr_keep_unlock();
    exzarr_unmap_all(victims, n);
    return got;
}

/* Keep `data` for a later allocation; unmap it if the pool cannot take it. */
static void exzarr_keep_put(char* data) {
    char* victims[2 * EXZARR_KEEP_SLOTS + 1];
    size_t cap = exzarr_huge_cap(data);
    int i, n = 0, slot = -1;
    double now;
    if (cap < EXZARR_HUGE_MIN || cap > __atomic_load_n(&exzarr_keep_limit, __ATOMIC_RELAXED)) {
        exzarr_huge_unmap(data);
        return;
    }
#ifdef MADV_FREE
    /* Before the pool shows it to anyone: the kernel may reclaim it rather than swap it. */
    madvise(data, cap, MADV_FREE);
#endif
    if (!exzarr_keep_lock()) {
        exzarr_huge_unmap(data);
        return;
    }
    if (cap > __atomic_load_n(&exzarr_keep_limit, __ATOMIC_RELAXED)) { /* changed meanwhile */
        exzarr_keep_unlock();
        exzarr_huge_unmap(data);
        return;
    }
    now = exzarr_now();
    n = exzarr_keep_expire(now, cap, victims);
    for (i = 0; i < EXZARR_KEEP_SLOTS && slot < 0; i++)
        if (!exzarr_keep[i].data)
            slot = i;
    if (slot < 0) { /* all slots full: the oldest makes room */
        slot = 0;
        for (i = 1; i < EXZARR_KEEP_SLOTS; i++)
            if (exzarr_keep[i].freed < exzarr_keep[slot].freed)
                slot = i;
        victims[n++] = exzarr_keep_take(slot);
    }
    exzarr_keep[slot].data = data;
    exzarr_keep[slot].freed = now;
    __atomic_store_n(&exzarr_keep_held, exzarr_keep_held + cap, __ATOMIC_RELAXED);
    exzarr_keep_unlock();
    exzarr_unmap_all(victims, n);
}

/* Set the pool's byte limit; returns the old one. Shrinking it unmaps what is over it
 * now, or, if the pool stays busy, at its next use (the holder never waits on us). */
static size_t exzarr_keep_set_limit(size_t limit) {
    char* victims[2 * EXZARR_KEEP_SLOTS];
    size_t old = __atomic_exchange_n(&exzarr_keep_limit, limit, __ATOMIC_RELAXED);
    int n, tries;
    for (tries = 0; tries < 100000; tries++) {
        if (exzarr_keep_lock()) {
            n = exzarr_keep_expire(exzarr_now(), 0, victims);
            exzarr_keep_unlock();
            exzarr_unmap_all(victims, n);
            break;
        }
        sched_yield(); /* it is held for a few loads, stores and a clock read */
    }
    return old;
}

/* Unmap all the pool holds (if it is free now), leaving its limit as it is. */
static void exzarr_keep_drain(void) {
    char* victims[2 * EXZARR_KEEP_SLOTS];
    int n;
    if (!exzarr_keep_lock())
        return;
    n = exzarr_keep_expire(exzarr_now(), (size_t)-1 / 2, victims);
    exzarr_keep_unlock();
    exzarr_unmap_all(victims, n);
}

/* Bytes the pool holds now. */
static size_t exzarr_keep_bytes(void) { return __atomic_load_n(&exzarr_keep_held, __ATOMIC_RELAXED); }

/* ---- the handler ---- */

static void* exzarr_huge_map(size_t size, int reuse) {
    size_t cap, want, total, lead, tail;
    char *raw, *data;
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - 2 * EXZARR_HUGE_ALIGN)
        return NULL;
    cap = (size + EXZARR_HUGE_PAGE - 1) & ~(EXZARR_HUGE_PAGE - 1);
    if (reuse && (data = exzarr_keep_get(cap)) != NULL)
        return data;
    want = EXZARR_HUGE_PAGE + cap;           /* header page + data */
    total = want + EXZARR_HUGE_ALIGN;        /* room to slide the data to 2 MiB */
    raw = (char*)mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED && exzarr_keep_bytes() > 0) {
        /* Out of address space or commit (RLIMIT_AS, overcommit off): what the pool keeps
         * goes back first, then one more try. */
        exzarr_keep_drain();
        raw = (char*)mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (raw == MAP_FAILED)
        return NULL;
    data = (char*)(((uintptr_t)raw + EXZARR_HUGE_PAGE + EXZARR_HUGE_ALIGN - 1) &
                   ~(uintptr_t)(EXZARR_HUGE_ALIGN - 1));
    lead = (size_t)(data - EXZARR_HUGE_PAGE - raw);
    tail = total - lead - want;
    if (lead)
        munmap(raw, lead);
    if (tail)
        munmap(data + cap, tail);
#ifdef MADV_HUGEPAGE
    madvise(data, cap, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    exzarr_huge_head(data)->magic = EXZARR_HUGE_MAGIC;
    exzarr_huge_head(data)->map_len = want;
    exzarr_huge_head(data)->capacity = cap;
    return data;
}

static void* exzarr_huge_malloc(void* ctx, size_t size) {
    (void)ctx;
    return exzarr_huge_map(size, 1);
}

static void* exzarr_huge_calloc(void* ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    if (elsize && nelem > SIZE_MAX / elsize)
        return NULL;
    return exzarr_huge_map(nelem * elsize, 0); /* fresh mappings read as zeros */
}

static void exzarr_huge_free(void* ctx, void* p, size_t size) {
    (void)ctx;
    (void)size;
    if (p == NULL)
        return;
    if (exzarr_huge_head(p)->magic != EXZARR_HUGE_MAGIC)
        return; /* not ours: never unmap what this handler did not map */
    exzarr_keep_put((char*)p);
}

static void* exzarr_huge_realloc(void* ctx, void* p, size_t size) {
    void* q;
    size_t keep;
    if (p == NULL)
        return exzarr_huge_malloc(ctx, size);
    if (exzarr_huge_head(p)->magic != EXZARR_HUGE_MAGIC)
        return NULL;
    keep = exzarr_huge_head(p)->capacity;
    if (size <= keep && size > keep / 2) {
        /* Shrinking a little: keep the mapping, but hand the whole huge pages past the
         * new end back to the kernel (they read as zeros if the array grows again). */
        size_t used = (size + EXZARR_HUGE_ALIGN - 1) & ~(EXZARR_HUGE_ALIGN - 1);
        if (used < keep)
            madvise((char*)p + used, keep - used, MADV_DONTNEED);
        return p;
    }
    q = exzarr_huge_malloc(ctx, size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, size < keep ? size : keep);
    exzarr_huge_free(ctx, p, keep);
    return q;
}

static PyDataMem_Handler exzarr_huge_handler = {
    "exzarr_huge_pages",
    1,
    {NULL, exzarr_huge_malloc, exzarr_huge_calloc, exzarr_huge_realloc, exzarr_huge_free},
};

/* A new capsule for PyDataMem_SetHandler (arrays keep a reference to it). */
static PyObject* exzarr_huge_capsule(void) {
    return PyCapsule_New(&exzarr_huge_handler, "mem_handler", NULL);
}

#endif
