# C declarations of c-blosc 1.x (context API, thread-safe) used by the exzarr core.

cdef extern from "blosc.h" nogil:
    int BLOSC_MAX_OVERHEAD
    int BLOSC_MIN_HEADER_LENGTH
    int BLOSC_MAX_TYPESIZE
    size_t BLOSC_MAX_BUFFERSIZE
    const char* BLOSC_VERSION_STRING

    int blosc_compress_ctx(int clevel, int doshuffle, size_t typesize, size_t nbytes,
                           const void* src, void* dest, size_t destsize,
                           const char* compressor, size_t blocksize,
                           int numinternalthreads)
    int blosc_decompress_ctx(const void* src, void* dest, size_t destsize,
                             int numinternalthreads)
    int blosc_cbuffer_validate(const void* cbuffer, size_t cbytes, size_t* nbytes)
    void blosc_cbuffer_sizes(const void* cbuffer, size_t* nbytes, size_t* cbytes,
                             size_t* blocksize)
    const char* blosc_list_compressors()
