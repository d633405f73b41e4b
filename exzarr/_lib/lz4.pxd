# C declarations of liblz4 (block API) used by the exzarr core.

cdef extern from "lz4.h" nogil:
    int LZ4_compress_fast(const char* src, char* dst, int srcSize, int dstCapacity,
                          int acceleration)
    int LZ4_decompress_safe(const char* src, char* dst, int compressedSize,
                            int dstCapacity)
    int LZ4_compress_fast_extState(void* state, const char* src, char* dst, int srcSize,
                                   int dstCapacity, int acceleration)
    int LZ4_sizeofState()
    int LZ4_compressBound(int inputSize)
    int LZ4_versionNumber()
    int LZ4_MAX_INPUT_SIZE
