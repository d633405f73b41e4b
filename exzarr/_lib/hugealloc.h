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
 * small pages (none for the usual power-of-two arrays). The page before the data holds the mapping's
 * start and length, so free and realloc need no table. The memory is zeroed by the
 * kernel, so calloc is malloc. Only arrays exzarr creates for a read of at least
 * EXZARR_HUGE_MIN bytes use it (see _core.empty); they are ordinary arrays owning their
 * data, freed with this handler by NumPy whoever drops them last.
 */
#ifndef EXZARR_HUGEALLOC_H
#define EXZARR_HUGEALLOC_H
#include <Python.h>
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
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

static void* exzarr_huge_malloc(void* ctx, size_t size) {
    size_t cap, want, total, lead, tail;
    char *raw, *data;
    (void)ctx;
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - 2 * EXZARR_HUGE_ALIGN)
        return NULL;
    cap = (size + EXZARR_HUGE_PAGE - 1) & ~(EXZARR_HUGE_PAGE - 1);
    want = EXZARR_HUGE_PAGE + cap;           /* header page + data */
    total = want + EXZARR_HUGE_ALIGN;        /* room to slide the data to 2 MiB */
    raw = (char*)mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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

static void* exzarr_huge_calloc(void* ctx, size_t nelem, size_t elsize) {
    if (elsize && nelem > SIZE_MAX / elsize)
        return NULL;
    return exzarr_huge_malloc(ctx, nelem * elsize); /* fresh mappings read as zeros */
}

static void exzarr_huge_free(void* ctx, void* p, size_t size) {
    exzarr_huge_header* h;
    (void)ctx;
    (void)size;
    if (p == NULL)
        return;
    h = exzarr_huge_head(p);
    if (h->magic != EXZARR_HUGE_MAGIC)
        return; /* not ours: never unmap what this handler did not map */
    h->magic = 0;
    munmap((char*)p - EXZARR_HUGE_PAGE, h->map_len);
}

static void* exzarr_huge_realloc(void* ctx, void* p, size_t size) {
    void* q;
    size_t keep;
    if (p == NULL)
        return exzarr_huge_malloc(ctx, size);
    if (exzarr_huge_head(p)->magic != EXZARR_HUGE_MAGIC)
        return NULL;
    keep = exzarr_huge_head(p)->capacity;
    if (size <= keep && size > keep / 2)
        return p; /* shrinking a little: keep the mapping */
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
