# C declarations of libdeflate (zlib and gzip streams, crc32, adler32) used by the exzarr core.

from libc.stdint cimport uint32_t

cdef extern from "libdeflate.h" nogil:
    struct libdeflate_compressor:
        pass
    struct libdeflate_decompressor:
        pass
    enum libdeflate_result:
        LIBDEFLATE_SUCCESS
        LIBDEFLATE_BAD_DATA
        LIBDEFLATE_SHORT_OUTPUT
        LIBDEFLATE_INSUFFICIENT_SPACE

    const char* LIBDEFLATE_VERSION_STRING

    libdeflate_compressor* libdeflate_alloc_compressor(int compression_level)
    void libdeflate_free_compressor(libdeflate_compressor* c)
    size_t libdeflate_zlib_compress(libdeflate_compressor* c, const void* src,
                                    size_t src_len, void* dst, size_t dst_avail)
    size_t libdeflate_zlib_compress_bound(libdeflate_compressor* c, size_t src_len)
    size_t libdeflate_gzip_compress(libdeflate_compressor* c, const void* src,
                                    size_t src_len, void* dst, size_t dst_avail)
    size_t libdeflate_gzip_compress_bound(libdeflate_compressor* c, size_t src_len)

    libdeflate_decompressor* libdeflate_alloc_decompressor()
    void libdeflate_free_decompressor(libdeflate_decompressor* d)
    libdeflate_result libdeflate_zlib_decompress_ex(
        libdeflate_decompressor* d, const void* src, size_t src_len, void* dst,
        size_t dst_avail, size_t* actual_in, size_t* actual_out)
    libdeflate_result libdeflate_gzip_decompress_ex(
        libdeflate_decompressor* d, const void* src, size_t src_len, void* dst,
        size_t dst_avail, size_t* actual_in, size_t* actual_out)

    uint32_t libdeflate_crc32(uint32_t crc, const void* buf, size_t len)
    uint32_t libdeflate_adler32(uint32_t adler, const void* buf, size_t len)
