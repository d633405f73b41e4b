# cython: language_level=3
"""GIL-free data path of exzarr: decode and encode batches of Zarr chunks.

The Python layers decide *what* moves (chunk keys, regions, the codec chain); this
module moves the bytes. One call handles a whole batch of chunks with the GIL
released: decompress (straight into the output when a chunk maps onto one
contiguous block of it), undo filters in place, copy the selected region; or the
reverse on write. Every length and offset handed in is checked, and a failure is
reported as a status code for one chunk, which :func:`_raise_for_status` turns into
the matching exception with the chunk's position in the batch.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset, strcmp, strncpy
from libc.errno cimport errno, ENOENT, EINTR, EOPNOTSUPP
from posix.fcntl cimport O_CREAT, O_EXCL, O_NONBLOCK, O_RDONLY, O_WRONLY, open as c_open
from posix.stat cimport fstat, struct_stat, S_ISDIR, S_ISREG
from posix.unistd cimport close, fsync, read, unlink, write
from posix.uio cimport iovec, preadv, pwritev

cdef extern from "fcntl.h":
    int O_CLOEXEC

cdef extern from "_lib/fileio.h" nogil:
    int exzarr_sync_folder(const char* path, char* last, size_t cap)
    int exzarr_fsync_dir(const char* dir)
    int exzarr_replace_file(const char* tmp, const char* path, int* fresh)
    int exzarr_open_unnamed(const char* path)
    int exzarr_publish_unnamed(int fd, const char* tmp, const char* path, int* fresh)
    void exzarr_preallocate(int fd, size_t n)
    void exzarr_lock_files()
    void exzarr_unlock_files()

cdef extern from "_lib/shuffle.h" nogil:
    void exzarr_shuffle_into(const uint8_t* src, size_t n, size_t ts, uint8_t* dst,
                             size_t stride, const uint8_t* pf)
    bint EXZARR_SHUFFLE_FAST(size_t ts)

cdef extern from "_lib/hugealloc.h":
    object exzarr_huge_capsule()
    size_t exzarr_keep_set_limit(size_t limit) nogil
    size_t exzarr_keep_bytes() nogil
    size_t EXZARR_HUGE_MIN

import threading

cimport numpy as cnp

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

from exzarr._lib.blosc cimport *
from exzarr._lib.deflate cimport *
from exzarr._lib.lz4 cimport *
from exzarr._lib.zstd cimport *

cnp.import_array()

DEF MAX_NDIM = 32
DEF MAX_CHUNK_BYTES = 1 << 62
DEF MAX_STEPS = 64

# --------------------------------------------------------------------------------------
# Codec steps
# --------------------------------------------------------------------------------------

cdef enum StepKind:
    STEP_RAW = 0        # no compressor: the chunk bytes as they are
    STEP_ZLIB = 1
    STEP_GZIP = 2
    STEP_ZSTD = 3
    STEP_LZ4 = 4
    STEP_BLOSC = 5
    STEP_DELTA = 16     # filters: array-to-array, native-endian numbers
    STEP_QUANTIZE = 17
    STEP_FSO = 18       # fixedscaleoffset
    STEP_ASTYPE = 19
    STEP_BITROUND = 20
    STEP_SHUFFLE = 21
    STEP_PACKBITS = 22
    STEP_CRC32 = 23
    STEP_ADLER32 = 24
    STEP_CRC32C = 25
    STEP_FLETCHER32 = 26

cdef enum ElemType:
    E_I1 = 1
    E_I2
    E_I4
    E_I8
    E_U1
    E_U2
    E_U4
    E_U8
    E_F4
    E_F8

cdef struct Step:
    int kind
    int level           # zlib/gzip/zstd level, blosc clevel
    int option          # zstd checksum flag, lz4 acceleration, blosc shuffle
    int elem            # element type of the decoded side of a filter (ElemType)
    int elem_out        # element type of the encoded side
    int param           # shuffle elementsize, bitround keepbits, checksum at end (1) or start (0)
    double scale        # quantize and fixedscaleoffset
    double offset
    size_t typesize     # blosc typesize
    size_t blocksize    # blosc blocksize (0 = automatic)
    char cname[16]      # blosc compressor name


DEF BLOSC_PLANS = 8  # chunk sizes a Pipeline keeps blosc_rows plans for


cdef struct BloscPlan:
    # How c-blosc lays out a frame of one chunk size (see blosc_rows): read off a frame
    # c-blosc made, so that blosc_rows writes the very bytes c-blosc would.
    size_t nbytes       # the chunk size this plan is for (0: none yet)
    size_t blocksize    # c-blosc's block size for it (0: blosc_rows cannot make it)
    int nsplits         # streams per whole block: the typesize where c-blosc splits, or 1
    uint8_t head[4]     # version, compressor version, flags and typesize bytes

cdef size_t SIZE_ERR = <size_t>-1

# Status codes reported per chunk.
cdef enum Status:
    ST_OK = 0
    ST_CORRUPT = 1      # the compressed stream is not valid for this codec
    ST_SIZE = 2         # it decoded to a size other than the chunk's
    ST_NOMEM = 3
    ST_ENCODE = 4       # the compression library failed
    ST_CHECKSUM = 5     # a checksum filter found a mismatch
    ST_IO = 6           # a file could not be read or written (errno in Ctx.err)
    ST_LIMIT = 7        # a stream of unstated size decodes to more than allowed

_STEP_KINDS = {"raw": STEP_RAW, "zlib": STEP_ZLIB, "gzip": STEP_GZIP, "zstd": STEP_ZSTD,
               "lz4": STEP_LZ4, "blosc": STEP_BLOSC, "delta": STEP_DELTA,
               "quantize": STEP_QUANTIZE, "fixedscaleoffset": STEP_FSO, "astype": STEP_ASTYPE,
               "bitround": STEP_BITROUND, "shuffle": STEP_SHUFFLE, "packbits": STEP_PACKBITS,
               "crc32": STEP_CRC32, "adler32": STEP_ADLER32, "crc32c": STEP_CRC32C,
               "fletcher32": STEP_FLETCHER32}
_ELEM_TYPES = {"i1": E_I1, "i2": E_I2, "i4": E_I4, "i8": E_I8, "u1": E_U1, "u2": E_U2,
               "u4": E_U4, "u8": E_U8, "f4": E_F4, "f8": E_F8}
_COMPRESSOR_KINDS = frozenset({STEP_RAW, STEP_ZLIB, STEP_GZIP, STEP_ZSTD, STEP_LZ4, STEP_BLOSC})


cdef class Pipeline:
    """A codec chain the core runs without the GIL: filters, then one compressor.

    Parameters
    ----------
    filters : list of dict
        Size-preserving filters in encode order, each ``{"kind": "delta", "elem": "i8"}``.
    compressor : dict or None
        ``{"kind": "zstd", "level": 1, "checksum": False}`` and the like; ``None`` stores
        chunk bytes as they are.
    """

    cdef Step* steps        # steps[0] is the compressor, then the filters in encode order
    cdef int nsteps
    cdef BloscPlan bplans[BLOSC_PLANS]  # see blosc_rows_plan
    cdef int bplan_next
    cdef object plan_lock
    cdef readonly object description

    def __cinit__(self, list filters not None, compressor):
        if len(filters) >= MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS - 1} filters")
        self.nsteps = 1 + len(filters)
        self.steps = <Step*>calloc(self.nsteps, sizeof(Step))
        if self.steps == NULL:
            raise MemoryError()
        self.plan_lock = threading.Lock()
        self._set_step(0, compressor if compressor is not None else {"kind": "raw"})
        for i, f in enumerate(filters):
            self._set_step(1 + i, f)
        self.description = (compressor, tuple(filters))

    def __dealloc__(self):
        free(self.steps)

    cdef _set_step(self, int i, dict spec):
        cdef Step* s = &self.steps[i]
        kind = _STEP_KINDS.get(spec.get("kind"))
        if kind is None:
            raise ValueError(f"the core has no codec step {spec.get('kind')!r}")
        if (i == 0) != (kind in _COMPRESSOR_KINDS):
            raise ValueError(f"codec step {spec['kind']!r} is not allowed at position {i}")
        s.kind = kind
        if kind == STEP_ZSTD:
            level = int(spec.get("level", 0))
            if not ZSTD_minCLevel() <= level <= ZSTD_maxCLevel():
                raise ValueError(f"zstd level {level} is outside "
                                 f"[{ZSTD_minCLevel()}, {ZSTD_maxCLevel()}]")
            s.level = level
            s.option = 1 if spec.get("checksum") else 0
        elif kind == STEP_ZLIB or kind == STEP_GZIP:
            level = int(spec.get("level", 1))
            if not 0 <= level <= 9:
                raise ValueError(f"zlib/gzip level {level} is outside [0, 9]")
            s.level = level
        elif kind == STEP_LZ4:
            s.option = max(1, int(spec.get("acceleration", 1)))
        elif kind == STEP_BLOSC:
            cname = spec.get("cname", "lz4").encode("ascii")
            if len(cname) >= 16 or cname.decode() not in blosc_compressors():
                raise ValueError(f"blosc has no compressor {cname.decode()!r}; "
                                 f"available: {', '.join(blosc_compressors())}")
            strncpy(s.cname, cname, 15)
            s.level = int(spec.get("clevel", 5))
            if not 0 <= s.level <= 9:
                raise ValueError(f"blosc clevel {s.level} is outside [0, 9]")
            s.option = int(spec.get("shuffle", 1))
            if s.option not in (0, 1, 2):
                raise ValueError(f"blosc shuffle {s.option} is not 0, 1 or 2")
            s.typesize = int(spec.get("typesize", 1))
            if s.typesize < 1:
                s.typesize = 1
            s.blocksize = int(spec.get("blocksize", 0))
        elif kind >= STEP_DELTA:
            elem = _ELEM_TYPES.get(spec.get("elem", "u1"))
            elem_out = _ELEM_TYPES.get(spec.get("elem_out", spec.get("elem", "u1")))
            if elem is None or elem_out is None:
                raise ValueError(f"{spec['kind']} has no C path for element types "
                                 f"{spec.get('elem')!r} -> {spec.get('elem_out')!r}")
            s.elem = elem
            s.elem_out = elem_out
            s.param = int(spec.get("param", 0))
            s.scale = float(spec.get("scale", 1.0))
            s.offset = float(spec.get("offset", 0.0))
            if kind == STEP_BITROUND and s.elem not in (E_F4, E_F8):
                raise ValueError("bitround works on float32 and float64")
            if kind == STEP_BITROUND and not 0 <= s.param <= (23 if s.elem == E_F4 else 52):
                raise ValueError(f"bitround keeps 0 to {23 if s.elem == E_F4 else 52} "
                                 f"mantissa bits, not {s.param}")
            if kind == STEP_SHUFFLE and s.param < 0:
                raise ValueError(f"shuffle element size {s.param} is negative")
            if kind in (STEP_QUANTIZE, STEP_FSO) and s.elem not in (E_F4, E_F8):
                raise ValueError(f"{spec['kind']} has a C path for float input only")
            if kind in (STEP_BITROUND, STEP_SHUFFLE, STEP_PACKBITS) or kind >= STEP_CRC32:
                s.elem_out = s.elem

    def __repr__(self):
        return f"<exzarr._core.Pipeline compressor={self.description[0]!r} filters={list(self.description[1])!r}>"

    cdef bint blosc_rows_plan(self, size_t nbytes, Py_ssize_t itemsize,
                              BloscPlan* plan) except -1:
        """Whether blosc_rows can encode chunks of nbytes for this chain; if so, its
        plan in ``plan``.

        Only a lone blosc compressor with lz4 and byte shuffle of 2-, 4- or 8-byte items
        (the sizes with a vector shuffle here). The block size and whether blocks are split into
        streams are c-blosc's choices; they depend on the sizes and settings, not the
        data, so they are read off the header of a frame c-blosc makes of zeros, once
        per chunk size; the last BLOSC_PLANS sizes are kept (the codec API sees buffers
        of several sizes in turn). The caller keeps a copy of the plan for its nogil
        part; the lock keeps the table whole where threads plan sizes at once.
        """
        cdef Step* s = &self.steps[0]
        cdef uint8_t* probe
        cdef uint8_t* out
        cdef int k, i
        cdef size_t bs
        cdef BloscPlan p
        if (self.nsteps != 1 or s.kind != STEP_BLOSC or strcmp(s.cname, b"lz4") != 0
                or s.option != 1 or <size_t>itemsize != s.typesize
                or not EXZARR_SHUFFLE_FAST(s.typesize) or not 1 <= s.level <= 9
                or nbytes < 4096 or nbytes > BLOSC_MAX_BUFFERSIZE - BLOSC_MAX_OVERHEAD):
            return False
        with self.plan_lock:
            for i in range(BLOSC_PLANS):
                if self.bplans[i].nbytes == nbytes:
                    plan[0] = self.bplans[i]
                    return plan[0].blocksize != 0
        probe = <uint8_t*>calloc(nbytes, 1)
        out = <uint8_t*>malloc(nbytes + BLOSC_MAX_OVERHEAD)
        if probe == NULL or out == NULL:
            free(probe)
            free(out)
            raise MemoryError()
        with nogil:
            k = blosc_compress_ctx(s.level, 1, s.typesize, nbytes, probe, out,
                                   nbytes + BLOSC_MAX_OVERHEAD, s.cname, s.blocksize, 1)
        memset(&p, 0, sizeof(BloscPlan))
        p.nbytes = nbytes
        bs = load_le32(out + 8) if k >= 16 else 0
        # A frame stored as it is (flag 0x02) has no blocks to follow.
        if k >= 16 and not out[2] & 0x02 and 0 < bs <= nbytes and bs % s.typesize == 0:
            p.blocksize = bs
            p.nsplits = 1 if out[2] & 0x10 else <int>s.typesize
            memcpy(p.head, out, 4)
        free(probe)
        free(out)
        with self.plan_lock:
            self.bplans[self.bplan_next] = p
            self.bplan_next = (self.bplan_next + 1) % BLOSC_PLANS
        plan[0] = p
        return p.blocksize != 0

    def encoded_size(self, Py_ssize_t nbytes):
        """Size after the filters (what the compressor sees) for nbytes of chunk data."""
        cdef size_t n = chain_sizes(self.steps, self.nsteps, nbytes, NULL)
        if n == SIZE_ERR:
            raise ValueError(f"{nbytes} bytes do not fit the filters {list(self.description[1])!r}")
        return n


def blosc_compressors():
    """Names of the compressors the linked c-blosc was built with."""
    return (<bytes>blosc_list_compressors()).decode().split(",")


def library_versions():
    """Versions of the linked compression libraries, as a dict."""
    zv = ZSTD_versionNumber()
    lv = LZ4_versionNumber()
    return {
        "zstd": f"{zv // 10000}.{zv // 100 % 100}.{zv % 100}",
        "lz4": f"{lv // 10000}.{lv // 100 % 100}.{lv % 100}",
        "libdeflate": (<bytes>LIBDEFLATE_VERSION_STRING).decode(),
        "blosc": (<bytes>BLOSC_VERSION_STRING).decode(),
    }


# --------------------------------------------------------------------------------------
# Per-call state: codec contexts are created lazily, once per batch, never shared
# between threads.
# --------------------------------------------------------------------------------------

DEF BUF_RUN = 2  # Ctx.buf slot of a write's encoded chunks


cdef struct Ctx:
    ZSTD_DCtx* zd
    ZSTD_CCtx* zc
    libdeflate_decompressor* dd
    libdeflate_compressor* dc
    int dc_level
    const char* detail     # static text describing the last failure
    uint8_t* buf[3]        # grown on demand: 0 and 1 scratch for filter stages, 2 the
    size_t cap[3]          # encoded chunks of a write waiting for their files (BUF_RUN)
    uint8_t* fbuf          # file contents, grown on demand
    size_t fcap
    int err                # errno of the last failed file operation
    int fresh              # the last chunk file replaced was new (see _lib/fileio.h)
    int no_unnamed         # unnamed chunk files failed in this call: write them named
    int sync               # fsync chunk files before naming them (config "fsync")
    void* lz4state         # LZ4_compress_fast_extState's state, made on first use


cdef uint8_t* ctx_buffer(Ctx* c, int which, size_t n) noexcept nogil:
    cdef uint8_t* p
    if c.cap[which] < n or c.buf[which] == NULL:
        p = <uint8_t*>realloc(c.buf[which], n if n else 1)
        if p == NULL:
            return NULL
        c.buf[which] = p
        c.cap[which] = n
    return c.buf[which]


cdef void ctx_free(Ctx* c) noexcept nogil:
    if c.zd != NULL:
        ZSTD_freeDCtx(c.zd)
    if c.zc != NULL:
        ZSTD_freeCCtx(c.zc)
    if c.dd != NULL:
        libdeflate_free_decompressor(c.dd)
    if c.dc != NULL:
        libdeflate_free_compressor(c.dc)
    free(c.buf[0])
    free(c.buf[1])
    free(c.buf[BUF_RUN])
    free(c.fbuf)
    free(c.lz4state)


cdef class Workspace:
    """Per-thread state reused across batch calls: codec contexts and scratch buffers.

    Creating zstd contexts and touching fresh megabyte buffers on every call costs more
    than decoding a small window; a worker thread keeps one Workspace (never shared
    between threads at once) and hands it to every call.
    """
    cdef Ctx c
    cdef uint8_t* scratch
    cdef size_t scratch_cap

    def __dealloc__(self):
        ctx_free(&self.c)
        free(self.scratch)

    cdef uint8_t* scratch_for(self, size_t n) noexcept nogil:
        cdef uint8_t* p
        if self.scratch == NULL or self.scratch_cap < n:
            p = <uint8_t*>realloc(self.scratch, n if n else 1)
            if p == NULL:
                return NULL
            self.scratch = p
            self.scratch_cap = n
        return self.scratch

    cdef void trim(self) noexcept nogil:
        """Give back buffers grown past 64 MiB by one huge chunk."""
        cdef size_t limit = 64 << 20
        if self.scratch_cap > limit:
            free(self.scratch)
            self.scratch = NULL
            self.scratch_cap = 0
        if self.c.fcap > limit:
            free(self.c.fbuf)
            self.c.fbuf = NULL
            self.c.fcap = 0
        for k in range(3):
            if self.c.cap[k] > limit:
                free(self.c.buf[k])
                self.c.buf[k] = NULL
                self.c.cap[k] = 0


# --------------------------------------------------------------------------------------
# Decompression: src -> dst, which must come out at exactly `expected` bytes.
# --------------------------------------------------------------------------------------

cdef inline uint32_t load_le32(const uint8_t* p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline void store_le32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef int decompress_any(Ctx* c, const Step* s, const uint8_t* src, size_t srclen,
                        uint8_t* dst, size_t cap, size_t* outlen) noexcept nogil:
    """Decompress into at most ``cap`` bytes; ST_SIZE when that is too little."""
    cdef size_t r, actual_in = 0, actual_out = 0, nbytes = 0
    cdef int n
    cdef libdeflate_result lr
    outlen[0] = 0
    if s.kind == STEP_RAW:
        if srclen > cap:
            c.detail = "stored size exceeds the chunk size"
            return ST_SIZE
        memcpy(dst, src, srclen)
        outlen[0] = srclen
        return ST_OK
    if s.kind == STEP_ZSTD:
        if c.zd == NULL:
            c.zd = ZSTD_createDCtx()
            if c.zd == NULL:
                return ST_NOMEM
        # Handles frames with no content size and several concatenated frames.
        r = ZSTD_decompressDCtx(c.zd, dst, cap, src, srclen)
        if ZSTD_isError(r):
            c.detail = ZSTD_getErrorName(r)
            return ST_SIZE if ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall else ST_CORRUPT
        outlen[0] = r
        return ST_OK
    if s.kind == STEP_ZLIB or s.kind == STEP_GZIP:
        if c.dd == NULL:
            c.dd = libdeflate_alloc_decompressor()
            if c.dd == NULL:
                return ST_NOMEM
        if s.kind == STEP_ZLIB:
            lr = libdeflate_zlib_decompress_ex(c.dd, src, srclen, dst, cap,
                                               &actual_in, &actual_out)
            nbytes = actual_out
        else:
            # gzip data may be several members one after another (bgzip, appends), with
            # zero bytes between and after them: read as Python's gzip module reads it.
            while True:
                lr = libdeflate_gzip_decompress_ex(c.dd, src, srclen, dst + nbytes,
                                                   cap - nbytes, &actual_in, &actual_out)
                if lr != LIBDEFLATE_SUCCESS:
                    break
                nbytes += actual_out
                src += actual_in
                srclen -= actual_in
                while srclen > 0 and src[0] == 0:
                    src += 1
                    srclen -= 1
                if srclen == 0 or actual_in == 0:
                    break
                if srclen < 2 or src[0] != 0x1F or src[1] != 0x8B:
                    c.detail = "bytes after a gzip member are not another member"
                    return ST_CORRUPT
        if lr == LIBDEFLATE_INSUFFICIENT_SPACE:
            c.detail = "deflate data decodes to more than the chunk size"
            return ST_SIZE
        if lr != LIBDEFLATE_SUCCESS:
            c.detail = "invalid deflate stream"
            return ST_CORRUPT
        outlen[0] = nbytes
        return ST_OK
    if s.kind == STEP_LZ4:
        if srclen < 4:
            c.detail = "lz4 chunk shorter than its 4-byte size header"
            return ST_CORRUPT
        nbytes = load_le32(src)
        if nbytes > cap or nbytes > <size_t>LZ4_MAX_INPUT_SIZE or srclen - 4 > <size_t>LZ4_MAX_INPUT_SIZE:
            c.detail = "lz4 size header exceeds the chunk size"
            return ST_SIZE
        n = LZ4_decompress_safe(<const char*>src + 4, <char*>dst, <int>(srclen - 4),
                                <int>nbytes)
        if n < 0 or <size_t>n != nbytes:
            c.detail = "invalid lz4 block"
            return ST_CORRUPT
        outlen[0] = nbytes
        return ST_OK
    if s.kind == STEP_BLOSC:
        # c-blosc reads its own header for the compressed length: check it against
        # what we actually hold before letting it look past the header.
        if srclen < <size_t>BLOSC_MIN_HEADER_LENGTH or blosc_cbuffer_validate(src, srclen, &nbytes) != 0:
            c.detail = "invalid blosc header"
            return ST_CORRUPT
        if nbytes > cap:
            c.detail = "blosc header size exceeds the chunk size"
            return ST_SIZE
        if nbytes > 0:
            n = blosc_decompress_ctx(src, dst, nbytes, 1)
            if n <= 0 or <size_t>n != nbytes:
                c.detail = "invalid blosc data"
                return ST_CORRUPT
        outlen[0] = nbytes
        return ST_OK
    c.detail = "unknown compressor step"
    return ST_CORRUPT


cdef int decompress_step(Ctx* c, const Step* s, const uint8_t* src, size_t srclen,
                         uint8_t* dst, size_t expected) noexcept nogil:
    """Decompress into exactly ``expected`` bytes."""
    cdef size_t outlen = 0
    cdef int st = decompress_any(c, s, src, srclen, dst, expected, &outlen)
    if st == ST_OK and outlen != expected:
        c.detail = "the chunk decodes to fewer bytes than the chunk size"
        return ST_SIZE
    return st


cdef bint zstd_stream_start(Ctx* c) noexcept nogil:
    """Make ``c``'s zstd decoder if needed and reset it for a new stream; False when
    out of memory."""
    if c.zd == NULL:
        c.zd = ZSTD_createDCtx()
        if c.zd == NULL:
            return False
    ZSTD_DCtx_reset(c.zd, ZSTD_reset_session_only)
    return True


cdef int zstd_frames_check(Ctx* c, const uint8_t* src, size_t srclen,
                           size_t expected) noexcept nogil:
    """Check the structure of every zstd frame in ``src`` without decoding it: frame and
    block headers reach exactly the end of the data, and the stated content sizes add up
    to ``expected``. ST_OK; ST_CORRUPT or ST_SIZE as a full decode would report them; or
    -1 where a frame does not state its content size or carries a content checksum
    (only a full decode can tell).
    """
    cdef size_t fsz, total = 0
    cdef unsigned long long cs
    while srclen > 0:
        fsz = ZSTD_findFrameCompressedSize(src, srclen)
        if ZSTD_isError(fsz):
            c.detail = ZSTD_getErrorName(fsz)
            return ST_CORRUPT
        if load_le32(src) == 0xFD2FB528U and src[4] & 0x04:
            return -1  # a content checksum is verified only by decoding the frame whole
        cs = ZSTD_getFrameContentSize(src, fsz)
        if cs == ZSTD_CONTENTSIZE_UNKNOWN:
            return -1
        if cs == ZSTD_CONTENTSIZE_ERROR:
            c.detail = "invalid zstd frame header"
            return ST_CORRUPT
        if cs > expected - total:
            c.detail = "zstd frames state more than the chunk size"
            return ST_SIZE
        total += <size_t>cs
        src += fsz
        srclen -= fsz
    if total != expected:
        c.detail = "zstd frames state less than the chunk size"
        return ST_SIZE
    return ST_OK


cdef int decompress_prefix(Ctx* c, const Step* s, const uint8_t* src, size_t srclen,
                           uint8_t* dst, size_t need, size_t expected) noexcept nogil:
    """Decode only the first ``need`` bytes of a chunk of ``expected`` bytes, with the
    verdict on the whole chunk a full decode would give wherever it can be had without
    decoding the rest.

    A read that selects the start of a chunk (a window high in a C-order chunk) stops
    decompressing zstd frames where the selection ends, once the frame and block headers
    of the whole chunk check out (truncated, extended or resized data is refused as a
    full read refuses it). Damage inside the compressed blocks not decoded goes unseen:
    frames with a content checksum, and every other codec, are decoded whole. (lz4
    decodes faster than its structure could be checked apart from decoding.)
    """
    cdef ZSTD_inBuffer zin
    cdef ZSTD_outBuffer zout
    cdef size_t r
    cdef int st
    if s.kind == STEP_ZSTD:
        st = zstd_frames_check(c, src, srclen, expected)
        if st < 0:
            return decompress_step(c, s, src, srclen, dst, expected)
        if st != ST_OK:
            return st
        if not zstd_stream_start(c):
            return ST_NOMEM
        zin.src = src
        zin.size = srclen
        zin.pos = 0
        zout.dst = dst
        zout.size = need
        zout.pos = 0
        while zout.pos < need:
            r = ZSTD_decompressStream(c.zd, &zout, &zin)
            if ZSTD_isError(r):
                c.detail = ZSTD_getErrorName(r)
                ZSTD_DCtx_reset(c.zd, ZSTD_reset_session_only)
                return ST_CORRUPT
            if zout.pos < need and zin.pos == zin.size:
                c.detail = "zstd data ends before the chunk does"
                ZSTD_DCtx_reset(c.zd, ZSTD_reset_session_only)
                return ST_SIZE if r == 0 else ST_CORRUPT
        ZSTD_DCtx_reset(c.zd, ZSTD_reset_session_only)
        return ST_OK
    return decompress_step(c, s, src, srclen, dst, expected)


cdef size_t region_extent(const Geometry* g, const int64_t[:, :, ::1] plan,
                          Py_ssize_t i) noexcept nogil:
    """Bytes of a decoded chunk up to and including the last element the region reads."""
    cdef int d
    cdef Py_ssize_t last, off = 0
    for d in range(g.ndim):
        if plan[i, d, 3] == 0:
            return 0
        last = plan[i, d, 0] + (plan[i, d, 3] - 1) * plan[i, d, 1]
        off += (plan[i, d, 0] if last < plan[i, d, 0] else last) * g.chunk_strides[d]
    return <size_t>off + g.itemsize


cdef size_t compress_bound(const Step* s, size_t n) noexcept nogil:
    if s.kind == STEP_RAW:
        return n
    if s.kind == STEP_ZSTD:
        return ZSTD_compressBound(n)
    if s.kind == STEP_ZLIB or s.kind == STEP_GZIP:
        # libdeflate's bound for any level, computed without a compressor at hand:
        # stored blocks cost 5 bytes per 10,000 or so, plus the stream wrapper.
        return n + (n // 10000 + 1) * 5 + 64
    if s.kind == STEP_LZ4:
        return 4 + <size_t>LZ4_compressBound(<int>n)
    if s.kind == STEP_BLOSC:
        return n + BLOSC_MAX_OVERHEAD
    return 0


cdef int compress_step(Ctx* c, const Step* s, const uint8_t* src, size_t n,
                       uint8_t* dst, size_t cap, size_t* outlen) noexcept nogil:
    cdef size_t r
    cdef int k
    if s.kind == STEP_RAW:
        memcpy(dst, src, n)
        outlen[0] = n
        return ST_OK
    if s.kind == STEP_ZSTD:
        if c.zc == NULL:
            c.zc = ZSTD_createCCtx()
            if c.zc == NULL:
                return ST_NOMEM
        ZSTD_CCtx_reset(c.zc, ZSTD_reset_session_and_parameters)
        ZSTD_CCtx_setParameter(c.zc, ZSTD_c_compressionLevel, s.level)
        ZSTD_CCtx_setParameter(c.zc, ZSTD_c_checksumFlag, s.option)
        r = ZSTD_compress2(c.zc, dst, cap, src, n)
        if ZSTD_isError(r):
            c.detail = ZSTD_getErrorName(r)
            return ST_ENCODE
        outlen[0] = r
        return ST_OK
    if s.kind == STEP_ZLIB or s.kind == STEP_GZIP:
        if c.dc == NULL or c.dc_level != s.level:
            if c.dc != NULL:
                libdeflate_free_compressor(c.dc)
            c.dc = libdeflate_alloc_compressor(s.level)
            c.dc_level = s.level
            if c.dc == NULL:
                return ST_NOMEM
        if s.kind == STEP_ZLIB:
            r = libdeflate_zlib_compress(c.dc, src, n, dst, cap)
        else:
            r = libdeflate_gzip_compress(c.dc, src, n, dst, cap)
        if r == 0:
            c.detail = "libdeflate output exceeded its bound"
            return ST_ENCODE
        outlen[0] = r
        return ST_OK
    if s.kind == STEP_LZ4:
        if n > <size_t>LZ4_MAX_INPUT_SIZE:
            c.detail = "chunk too large for an lz4 block"
            return ST_ENCODE
        store_le32(dst, <uint32_t>n)
        k = LZ4_compress_fast(<const char*>src, <char*>dst + 4, <int>n, <int>(cap - 4), s.option)
        if k <= 0 and n > 0:
            c.detail = "lz4 compression failed"
            return ST_ENCODE
        outlen[0] = 4 + <size_t>k
        return ST_OK
    if s.kind == STEP_BLOSC:
        if n > BLOSC_MAX_BUFFERSIZE:
            c.detail = "chunk too large for blosc"
            return ST_ENCODE
        k = blosc_compress_ctx(s.level, s.option, s.typesize, n, src, dst, cap,
                               s.cname, s.blocksize, 1)
        if k <= 0:
            c.detail = "blosc compression failed"
            return ST_ENCODE
        outlen[0] = <size_t>k
        return ST_OK
    c.detail = "unknown compressor step"
    return ST_ENCODE


# --------------------------------------------------------------------------------------
# Filters (in place, size-preserving). Integer arithmetic wraps, as NumPy's does.
# --------------------------------------------------------------------------------------

include "_filters.pxi"


cdef size_t chain_sizes(const Step* steps, int nsteps, size_t nbytes, size_t* sizes) noexcept nogil:
    """Sizes after each filter (sizes[0] = nbytes); returns the last, or SIZE_ERR."""
    cdef int i
    cdef size_t n = nbytes
    if sizes != NULL:
        sizes[0] = n
    for i in range(1, nsteps):
        n = filter_encoded_size(&steps[i], n)
        if n == SIZE_ERR:
            return SIZE_ERR
        if sizes != NULL:
            sizes[i] = n
    return n



cdef inline bint decodes_in_place(const Step* s) noexcept nogil:
    """Whether a filter can be undone element by element inside one buffer."""
    if s.kind == STEP_BITROUND:
        return True
    if s.kind == STEP_DELTA or s.kind == STEP_QUANTIZE or s.kind == STEP_ASTYPE:
        return s.elem == s.elem_out
    if s.kind == STEP_FSO:
        return elem_size(s.elem) == elem_size(s.elem_out)
    return False


cdef int decode_chain(Ctx* c, const Step* steps, int nsteps, const uint8_t* src,
                      size_t srclen, uint8_t* dst, size_t nbytes) noexcept nogil:
    """Decompress, then undo the filters in reverse order, into exactly nbytes at dst."""
    cdef size_t sizes[MAX_STEPS]
    cdef int i, st, which = 0
    cdef bint in_place = True
    cdef uint8_t* cur
    cdef uint8_t* nxt
    if nsteps == 1:
        return decompress_step(c, &steps[0], src, srclen, dst, nbytes)
    for i in range(1, nsteps):
        in_place = in_place and decodes_in_place(&steps[i])
    if in_place:
        # Size-preserving, element-wise filters: decompress into place and undo them
        # there, one pass over the chunk fewer than through scratch.
        st = decompress_step(c, &steps[0], src, srclen, dst, nbytes)
        if st != ST_OK:
            return st
        for i in range(nsteps - 1, 0, -1):
            st = filter_decode(c, &steps[i], dst, nbytes, dst, nbytes)
            if st != ST_OK:
                return st
        return ST_OK
    if chain_sizes(steps, nsteps, nbytes, sizes) == SIZE_ERR:
        c.detail = "the chunk size does not fit the filters"
        return ST_SIZE
    cur = ctx_buffer(c, 0, sizes[nsteps - 1])
    if cur == NULL:
        return ST_NOMEM
    st = decompress_step(c, &steps[0], src, srclen, cur, sizes[nsteps - 1])
    if st != ST_OK:
        return st
    for i in range(nsteps - 1, 0, -1):
        if i == 1:
            nxt = dst
        else:
            which ^= 1
            nxt = ctx_buffer(c, which, sizes[i - 1])
            if nxt == NULL:
                return ST_NOMEM
        st = filter_decode(c, &steps[i], cur, sizes[i], nxt, sizes[i - 1])
        if st != ST_OK:
            return st
        cur = nxt
    return ST_OK


cdef int encode_chain(Ctx* c, const Step* steps, int nsteps, const uint8_t* src,
                      size_t nbytes, uint8_t* dst, size_t cap, size_t* outlen) noexcept nogil:
    """Apply the filters in order, then the compressor into dst (capacity cap)."""
    cdef size_t sizes[MAX_STEPS]
    cdef int i, st, which = 0
    cdef uint8_t* nxt
    if nsteps > 1:
        if chain_sizes(steps, nsteps, nbytes, sizes) == SIZE_ERR:
            c.detail = "the chunk size does not fit the filters"
            return ST_ENCODE
        for i in range(1, nsteps):
            nxt = ctx_buffer(c, which, sizes[i])
            if nxt == NULL:
                return ST_NOMEM
            st = filter_encode(c, &steps[i], src, sizes[i - 1], nxt)
            if st != ST_OK:
                return st
            src = nxt
            which ^= 1
        nbytes = sizes[nsteps - 1]
    return compress_step(c, &steps[0], src, nbytes, dst, cap, outlen)


# --------------------------------------------------------------------------------------
# Chunk files read and written without the GIL (directory stores).
# --------------------------------------------------------------------------------------

cdef bint regular_file(Ctx* c, const struct_stat* st) noexcept nogil:
    """Whether a chunk file is a regular file; otherwise the failure in c (EISDIR for a
    folder, as read() says; EINVAL and a detail for a FIFO, socket or device)."""
    if S_ISREG(st.st_mode):
        return True
    if S_ISDIR(st.st_mode):
        c.err = 21  # EISDIR
    else:
        c.err = 22  # EINVAL
        c.detail = "is not a regular file (a FIFO, socket or device)"
    return False


cdef Py_ssize_t read_whole_file(Ctx* c, const char* path) noexcept nogil:
    """Read a file into c.fbuf; its length, -1 when it does not exist, -2 on error."""
    cdef int fd
    cdef struct_stat st
    cdef size_t size, done = 0
    cdef Py_ssize_t got
    cdef uint8_t* p
    # O_NONBLOCK: a FIFO at a chunk's path must not block the open; refused below.
    fd = c_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if fd < 0:
        if errno == ENOENT:
            return -1
        c.err = errno
        return -2
    if fstat(fd, &st) != 0:
        c.err = errno
        close(fd)
        return -2
    if not regular_file(c, &st):
        close(fd)
        return -2
    size = <size_t>st.st_size
    if c.fcap < size or c.fbuf == NULL:
        p = <uint8_t*>realloc(c.fbuf, size if size else 1)
        if p == NULL:
            close(fd)
            c.err = 12  # ENOMEM
            return -2
        c.fbuf = p
        c.fcap = size
    while done < size:
        got = read(fd, c.fbuf + done, size - done)
        if got < 0:
            if errno == EINTR:
                continue
            c.err = errno
            close(fd)
            return -2
        if got == 0:
            break  # truncated under us: what we have is what the chunk is
        done += <size_t>got
    close(fd)
    return <Py_ssize_t>done


DEF MAX_IOV = 1024
DEF BIG_CHUNK_FILE = 262144   # chunk files this big create and rename without taking turns


cdef inline Py_ssize_t chunk_rows(const Geometry* g) noexcept nogil:
    """Rows (runs along the last dimension) in a whole C-order chunk."""
    cdef Py_ssize_t rows = 1
    cdef int d
    for d in range(g.ndim - 1):
        rows *= g.chunk_shape[d]
    return rows


cdef inline Py_ssize_t row_offset(const Geometry* g, Py_ssize_t r) noexcept nogil:
    """Byte offset in the user's array of row r (C order) of a whole chunk."""
    cdef Py_ssize_t off = 0
    cdef int d
    for d in range(g.ndim - 2, -1, -1):
        off += (r % g.chunk_shape[d]) * g.arr_strides[d]
        r //= g.chunk_shape[d]
    return off


cdef int transfer_rows(Ctx* c, int fd, const Geometry* g, char* base, bint writing) noexcept nogil:
    """Move a C-order chunk between a file and its rows in the user's array.

    The chunk's rows lie at ``base`` with the array's strides; the file holds them
    back to back from offset 0. One preadv/pwritev per up to 1,024 rows, so the bytes
    cross between the page cache and their place in one copy, with no scratch buffer.
    """
    cdef iovec iov[MAX_IOV]
    cdef int k, nv
    cdef Py_ssize_t row_bytes = g.chunk_shape[g.ndim - 1] * g.itemsize
    cdef Py_ssize_t rows = chunk_rows(g), r = 0
    cdef Py_ssize_t got
    cdef size_t want, done, pos = 0
    while r < rows:
        nv = 0
        want = 0
        while nv < MAX_IOV and r < rows:
            iov[nv].iov_base = base + row_offset(g, r)
            iov[nv].iov_len = <size_t>row_bytes
            want += <size_t>row_bytes
            nv += 1
            r += 1
        done = 0
        while done < want:
            if writing:
                got = pwritev(fd, iov, nv, <long>(pos + done))
            else:
                got = preadv(fd, iov, nv, <long>(pos + done))
            if got < 0:
                if errno == EINTR:
                    continue
                c.err = errno
                return ST_IO
            if got == 0:
                if writing:
                    c.err = 5  # EIO: the file system took no bytes
                    return ST_IO
                c.detail = "chunk file shrank while being read"
                return ST_SIZE
            done += <size_t>got
            # Drop the iovecs done so far and trim a partly done one.
            k = 0
            while k < nv and <size_t>got >= iov[k].iov_len:
                got -= <Py_ssize_t>iov[k].iov_len
                k += 1
            if k < nv and got > 0:
                iov[k].iov_base = <char*>iov[k].iov_base + got
                iov[k].iov_len -= <size_t>got
            memmove(iov, iov + k, (nv - k) * sizeof(iovec))
            nv -= k
        pos += want
    return ST_OK


cdef int read_file_scattered(Ctx* c, const char* path, const Geometry* g, char* dst) noexcept nogil:
    """Read an uncompressed C-order chunk straight into its (strided) place in the output.

    Returns ST_OK, ST_IO, ST_SIZE, or -1 when the file is missing.
    """
    cdef int fd, st
    cdef struct_stat sb
    fd = c_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  # see read_whole_file
    if fd < 0:
        if errno == ENOENT:
            return -1
        c.err = errno
        return ST_IO
    if fstat(fd, &sb) != 0:
        c.err = errno
        close(fd)
        return ST_IO
    if not regular_file(c, &sb):
        close(fd)
        return ST_IO
    if <size_t>sb.st_size != g.chunk_nbytes:
        close(fd)
        c.detail = "stored size differs from the chunk size"
        return ST_SIZE
    st = transfer_rows(c, fd, g, dst, False)
    close(fd)
    return st


cdef bint whole_chunk_rows(const Geometry* g, const int64_t[:, :, ::1] plan, Py_ssize_t i,
                           char** dst) noexcept nogil:
    """True when chunk i is selected whole, C order, with rows contiguous in arr."""
    cdef int d
    cdef Py_ssize_t off = 0
    if not g.chunk_c_order or g.ndim == 0 or g.arr_strides[g.ndim - 1] != g.itemsize:
        return False
    for d in range(g.ndim):
        if plan[i, d, 0] != 0 or plan[i, d, 1] != 1 or plan[i, d, 3] != g.chunk_shape[d]:
            return False
        off += plan[i, d, 2] * g.arr_strides[d]
    dst[0] += off
    return True


cdef inline size_t chunk_file_size(size_t n, const Geometry* g, const char* rows) noexcept nogil:
    """The size of the file write_file_atomic makes from the same arguments."""
    return g.chunk_nbytes if rows != NULL else n


cdef int write_chunk_data(Ctx* c, int fd, const uint8_t* data, size_t n, const Geometry* g,
                          char* rows) noexcept nogil:
    """Write a chunk into the new file fd: ``data[:n]``, or with ``rows`` set the chunk's
    rows straight from the user's array (see transfer_rows)."""
    cdef Py_ssize_t put
    cdef size_t done = 0
    exzarr_preallocate(fd, chunk_file_size(n, g, rows))
    if rows != NULL:
        return transfer_rows(c, fd, g, rows, True)
    while done < n:
        put = write(fd, data + done, n - done)
        if put < 0:
            if errno == EINTR:
                continue
            c.err = errno
            return ST_IO
        done += <size_t>put
    return ST_OK


cdef int write_file_atomic(Ctx* c, const char* tmp, const char* path, const uint8_t* data,
                           size_t n, const Geometry* g, char* rows, bint locked) noexcept nogil:
    """Write a chunk to its file so that readers never see it torn.

    The chunk is ``data[:n]``, or, when ``rows`` is set, the chunk's rows gathered
    straight from the user's array (see transfer_rows). Where the last chunk file was
    new, it is written unnamed and linked at ``path`` (see _lib/fileio.h); otherwise,
    or where the file system cannot, it goes to ``tmp`` and is moved onto ``path``.
    Creating and naming files take turns under the file lock, the data itself is
    written in parallel; unless the caller already holds the lock (``locked``) for a
    run of small chunks.
    """
    cdef int fd, st = ST_OK, published = 0
    # A big chunk's data write dwarfs its create and rename: those need no turns then.
    cdef bint take_turns = not locked and chunk_file_size(n, g, rows) < BIG_CHUNK_FILE
    if c.fresh and not c.no_unnamed:
        if take_turns:
            exzarr_lock_files()
        fd = exzarr_open_unnamed(path)
        if take_turns:
            exzarr_unlock_files()
        if fd < 0:
            if errno == EOPNOTSUPP:
                c.no_unnamed = 1  # no O_TMPFILE here
            # Named below, which reports any other failure (a missing folder) itself.
        else:
            st = write_chunk_data(c, fd, data, n, g, rows)
            if st == ST_OK and c.sync and fsync(fd) != 0:
                c.err = errno
                st = ST_IO
            if st == ST_OK:
                if take_turns:
                    exzarr_lock_files()
                published = exzarr_publish_unnamed(fd, tmp, path, &c.fresh)
                if published == -1:
                    c.err = errno
                    st = ST_IO
                if take_turns:
                    exzarr_unlock_files()
            # Closing an unnamed file never linked removes it. Once linked, a failing
            # close (a file system that reports write errors only then) still fails
            # the call, though readers may already see the chunk.
            if close(fd) != 0 and st == ST_OK and published == 0:
                c.err = errno
                st = ST_IO
            if published != -2:
                return st
            c.no_unnamed = 1  # cannot link unnamed files: write it again, named
    return write_file_named(c, tmp, path, data, n, g, rows, take_turns)


cdef int write_file_named(Ctx* c, const char* tmp, const char* path, const uint8_t* data,
                          size_t n, const Geometry* g, char* rows, bint take_turns) noexcept nogil:
    """write_file_atomic through a temporary name: write tmp, then move it onto path."""
    cdef int fd, st
    if take_turns:
        exzarr_lock_files()
    fd = c_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
    if take_turns:
        exzarr_unlock_files()
    if fd < 0:
        c.err = errno
        return ST_IO
    st = write_chunk_data(c, fd, data, n, g, rows)
    if st == ST_OK and c.sync and fsync(fd) != 0:
        c.err = errno
        st = ST_IO
    if close(fd) != 0 and st == ST_OK:
        c.err = errno
        st = ST_IO
    if st == ST_OK:
        if take_turns:
            exzarr_lock_files()
        if exzarr_replace_file(tmp, path, &c.fresh) != 0:
            c.err = errno
            st = ST_IO
        if take_turns:
            exzarr_unlock_files()
    if st != ST_OK:
        unlink(tmp)
    return st


DEF SMALL_RUN_BYTES = 262144   # encoded bytes collected before one locked run of writes
DEF SMALL_RUN_MAX = 32


cdef int write_run(Ctx* c, _Paths tmps, _Paths files, const Py_ssize_t* run, int nrun,
                   const uint8_t* buf, size_t cap, const size_t* lens,
                   Py_ssize_t* failed) noexcept nogil:
    """Write a run of encoded chunks (chunk run[k] at buf + k * cap) to their files.

    Small chunks cost little to write and much to create: handing the file lock from
    thread to thread for every file costs more than the file itself, so a run of them
    is written under one turn of the lock while the other threads go on encoding.
    """
    cdef int k, st = ST_OK
    if nrun == 1:
        st = write_file_atomic(c, tmps.ptrs[run[0]], files.ptrs[run[0]], buf, lens[run[0]],
                               NULL, NULL, False)
        if st != ST_OK:
            failed[0] = run[0]
        return st
    exzarr_lock_files()
    for k in range(nrun):
        st = write_file_atomic(c, tmps.ptrs[run[k]], files.ptrs[run[k]], buf + k * cap,
                               lens[run[k]], NULL, NULL, True)
        if st != ST_OK:
            failed[0] = run[k]
            break
    exzarr_unlock_files()
    return st


cdef bint rows_equal_fill(const Geometry* g, const char* base, const char* pattern,
                          int nan_kind) noexcept nogil:
    """all_equal_fill over a whole chunk whose rows lie strided in the user's array."""
    cdef Py_ssize_t row_bytes = g.chunk_shape[g.ndim - 1] * g.itemsize
    cdef Py_ssize_t r
    for r in range(chunk_rows(g)):
        if not all_equal_fill(<const uint8_t*>base + row_offset(g, r), <size_t>row_bytes,
                              pattern, g.itemsize, nan_kind):
            return False
    return True


cdef class _Paths:
    """C strings of a list of bytes paths, held for a call."""
    cdef const char** ptrs
    cdef list keep
    cdef Py_ssize_t n

    def __cinit__(self, list paths):
        self.n = len(paths)
        for p in paths:
            if not isinstance(p, bytes) or b"\0" in p:
                raise ValueError(f"paths are bytes without NUL characters, not {p!r}")
        self.keep = list(paths)
        self.ptrs = <const char**>calloc(max(self.n, 1), sizeof(char*))
        if self.ptrs == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.ptrs[i] = PyBytes_AS_STRING(self.keep[i])

    def __dealloc__(self):
        free(self.ptrs)


# --------------------------------------------------------------------------------------
# Strided N-d copies and fills over byte strides.
# --------------------------------------------------------------------------------------

cdef int coalesce(Py_ssize_t* counts, Py_ssize_t* a, Py_ssize_t* b, int ndim) noexcept nogil:
    """Drop unit dimensions and merge neighbours contiguous in both a and b."""
    cdef int i, m = 0
    for i in range(ndim):
        if counts[i] == 1:
            continue
        if m > 0 and a[m - 1] == a[i] * counts[i] and b[m - 1] == b[i] * counts[i]:
            counts[m - 1] *= counts[i]
            a[m - 1] = a[i]
            b[m - 1] = b[i]
            continue
        counts[m] = counts[i]
        a[m] = a[i]
        b[m] = b[i]
        m += 1
    return m


cdef inline void copy_row(char* dst, Py_ssize_t ds, const char* src, Py_ssize_t ss,
                          Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    cdef Py_ssize_t i
    if ds == itemsize and ss == itemsize:
        memcpy(dst, src, n * itemsize)
    elif itemsize == 1:
        for i in range(n):
            dst[i * ds] = src[i * ss]
    elif itemsize == 2:
        for i in range(n):
            (<uint16_t*>(dst + i * ds))[0] = (<const uint16_t*>(src + i * ss))[0]
    elif itemsize == 4:
        for i in range(n):
            (<uint32_t*>(dst + i * ds))[0] = (<const uint32_t*>(src + i * ss))[0]
    elif itemsize == 8:
        for i in range(n):
            (<uint64_t*>(dst + i * ds))[0] = (<const uint64_t*>(src + i * ss))[0]
    else:
        for i in range(n):
            memcpy(dst + i * ds, src + i * ss, itemsize)


cdef void fill_row(char* dst, Py_ssize_t ds, Py_ssize_t n, const char* pattern,
                   Py_ssize_t itemsize, bint zero) noexcept nogil:
    cdef Py_ssize_t i, done, step
    if zero and ds == itemsize:
        memset(dst, 0, n * itemsize)
        return
    if ds == itemsize and n > 0:
        # Write one element, then double the filled run with memcpy.
        memcpy(dst, pattern, itemsize)
        done = 1
        while done < n:
            step = done if done <= n - done else n - done
            memcpy(dst + done * itemsize, dst, step * itemsize)
            done += step
        return
    for i in range(n):
        memcpy(dst + i * ds, pattern, itemsize)


cdef extern from *:
    """
    /* Hints only: a prefetch never faults, so an address past the region is harmless. */
    static inline void exzarr_prefetch_read(const void *p) { __builtin_prefetch(p, 0, 3); }

    /* memcpy with non-temporal stores for the 16-byte aligned middle of dst: the lines
     * go to memory without first being read into the cache (see copy_nd_out).
     * exzarr_stream_fence() orders them before anything that follows. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline void exzarr_copy_stream(char *dst, const char *src, size_t n)
    {
        size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
        if (n < head + 64) {
            memcpy(dst, src, n);
            return;
        }
        memcpy(dst, src, head);
        dst += head; src += head; n -= head;
        for (; n >= 64; n -= 64, dst += 64, src += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
            _mm_stream_si128((__m128i *)dst, a);
            _mm_stream_si128((__m128i *)(dst + 16), b);
            _mm_stream_si128((__m128i *)(dst + 32), c);
            _mm_stream_si128((__m128i *)(dst + 48), d);
        }
        memcpy(dst, src, n);
    }
    static inline void exzarr_stream_fence(void) { _mm_sfence(); }
    #else
    static inline void exzarr_copy_stream(char *dst, const char *src, size_t n) { memcpy(dst, src, n); }
    static inline void exzarr_stream_fence(void) {}
    #endif
    """
    void exzarr_prefetch_read(const void* p) nogil
    void exzarr_copy_stream(char* dst, const char* src, size_t n) nogil
    void exzarr_stream_fence() nogil


DEF PREFETCH_ROWS = 2         # rows ahead whose start is asked for while one is copied
DEF PREFETCH_MIN_ROW = 512    # bytes: shorter rows sit close enough for the hardware
DEF SHUFFLE_AHEAD_ROWS = 4    # rows ahead blosc_rows asks for, paced (see _lib/shuffle.h)


cdef inline void prefetch_row(const char* p) noexcept nogil:
    """Ask for the first four cache lines of a row read soon.

    A strided copy reads rows of a few KiB that lie far apart, say 2 KiB
    of every 16 KiB row of a big array: the hardware prefetcher starts anew on every
    row and waits for memory at each start. Asking for a row's first lines two rows
    early hides that wait; the prefetcher then follows the row by itself. Gathering
    the 1 MiB chunks of a 64 MiB float32 array on two threads took 4.8 ms instead of
    5.4 (medians of 31), and a blosc-lz4 write of it 2-3% less.
    """
    exzarr_prefetch_read(p)
    exzarr_prefetch_read(p + 64)
    exzarr_prefetch_read(p + 128)
    exzarr_prefetch_read(p + 192)


cdef inline bint rows_far_apart(Py_ssize_t row_bytes, Py_ssize_t stride) noexcept nogil:
    """Whether rows of ``row_bytes`` bytes, ``stride`` bytes apart, are worth asking for
    ahead of use (see prefetch_row)."""
    return row_bytes >= PREFETCH_MIN_ROW and (stride > row_bytes or stride < -row_bytes)


cdef void walk_nd(char* dst, const Py_ssize_t* dst_strides, const char* src,
                  const Py_ssize_t* src_strides, const Py_ssize_t* counts_in, int ndim,
                  Py_ssize_t itemsize, bint fill, bint stream=False) noexcept nogil:
    """Copy a strided N-d region (or, with ``fill``, repeat the element at src into it);
    ``stream``: contiguous rows with exzarr_copy_stream (the caller fences)."""
    cdef Py_ssize_t counts[MAX_NDIM]
    cdef Py_ssize_t ds[MAX_NDIM]
    cdef Py_ssize_t ss[MAX_NDIM]
    cdef Py_ssize_t idx[MAX_NDIM]
    cdef int i, m, d
    cdef bint zero = True
    if fill:
        for i in range(itemsize):
            if src[i] != 0:
                zero = False
    for i in range(ndim):
        if counts_in[i] == 0:
            return
        counts[i] = counts_in[i]
        ds[i] = dst_strides[i]
        ss[i] = dst_strides[i] if fill else src_strides[i]
    m = coalesce(counts, ds, ss, ndim)
    if m == 0:
        memcpy(dst, src, itemsize)
        return
    for i in range(m):
        idx[i] = 0
    # Rows of PREFETCH_MIN_ROW bytes or more, contiguous, read from far apart: ask for
    # the rows PREFETCH_ROWS ahead (see prefetch_row). Not for the rows written: asking
    # for lines about to be overwritten whole made the scatter of a read slower.
    cdef Py_ssize_t row_bytes = counts[m - 1] * itemsize
    cdef Py_ssize_t ahead = 0
    if (not fill and m >= 2 and ds[m - 1] == itemsize and ss[m - 1] == itemsize
            and rows_far_apart(row_bytes, ss[m - 2])):
        ahead = PREFETCH_ROWS * ss[m - 2]
    while True:
        if ahead:
            prefetch_row(src + ahead)
        if fill:
            fill_row(dst, ds[m - 1], counts[m - 1], src, itemsize, zero)
        elif stream and ds[m - 1] == itemsize and ss[m - 1] == itemsize:
            exzarr_copy_stream(dst, src, <size_t>row_bytes)
        else:
            copy_row(dst, ds[m - 1], src, ss[m - 1], counts[m - 1], itemsize)
        d = m - 2
        while d >= 0:
            idx[d] += 1
            dst += ds[d]
            if not fill:
                src += ss[d]
            if idx[d] < counts[d]:
                break
            dst -= ds[d] * counts[d]
            if not fill:
                src -= ss[d] * counts[d]
            idx[d] = 0
            d -= 1
        if d < 0:
            return


cdef inline void copy_nd(char* dst, const Py_ssize_t* dst_strides, const char* src,
                         const Py_ssize_t* src_strides, const Py_ssize_t* counts, int ndim,
                         Py_ssize_t itemsize) noexcept nogil:
    walk_nd(dst, dst_strides, src, src_strides, counts, ndim, itemsize, False)


DEF STREAM_MIN_OUT = 16 << 20  # bytes: results this big are written around the caches


cdef inline void copy_nd_out(char* dst, const Py_ssize_t* dst_strides, const char* src,
                             const Py_ssize_t* src_strides, const Py_ssize_t* counts,
                             int ndim, Py_ssize_t itemsize, bint stream) noexcept nogil:
    """copy_nd into a read's result; with ``stream``, for a result of STREAM_MIN_OUT
    bytes or more, the rows go straight to
    memory (non-temporal stores). A plain store first reads each line of the result
    into the cache, only to overwrite it and push it out again soon after, a third of
    the memory traffic of the copy. Reading W1 (64 decoded 1 MiB chunks into a 64 MiB
    float32 array, two threads; bench/loop.py, three alternations): blosc-lz4
    16.2/16.0/15.8 -> 11.3/11.3/11.8 ms, zstd-1 41.1/40.9/41.2 -> 35.9/37.1/36.4 ms.
    16 MiB is past what the caches near two cores hold beside the decoding itself; the
    last-level size the C library reports cannot say (in this Firecracker guest it is
    the host's, 480 MiB). A smaller result stays in the cache for whatever reads it next.
    """
    walk_nd(dst, dst_strides, src, src_strides, counts, ndim, itemsize, False, stream)
    if stream:
        exzarr_stream_fence()


cdef inline void fill_nd(char* dst, const Py_ssize_t* dst_strides, const Py_ssize_t* counts,
                         int ndim, const char* pattern, Py_ssize_t itemsize) noexcept nogil:
    walk_nd(dst, dst_strides, pattern, NULL, counts, ndim, itemsize, True)


cdef bint all_equal_fill(const uint8_t* buf, size_t nbytes, const char* pattern,
                         Py_ssize_t itemsize, int nan_kind) noexcept nogil:
    """True when every element equals the fill value (NaN fill: every element is NaN)."""
    cdef size_t i, n
    cdef const float* f4
    cdef const double* f8
    if nan_kind == 4:
        f4 = <const float*>buf
        n = nbytes // 4
        for i in range(n):
            if f4[i] == f4[i]:
                return False
        return True
    if nan_kind == 8:
        f8 = <const double*>buf
        n = nbytes // 8
        for i in range(n):
            if f8[i] == f8[i]:
                return False
        return True
    if nbytes == 0:
        return True
    if memcmp(buf, pattern, itemsize) != 0:
        return False
    # buf == pattern repeated iff buf[itemsize:] == buf[:-itemsize].
    return memcmp(buf + itemsize, buf, nbytes - itemsize) == 0


# --------------------------------------------------------------------------------------
# Chunk geometry shared by the batch calls.
# --------------------------------------------------------------------------------------

cdef struct Geometry:
    int ndim
    Py_ssize_t itemsize
    size_t chunk_nbytes
    Py_ssize_t chunk_shape[MAX_NDIM]
    Py_ssize_t chunk_strides[MAX_NDIM]   # byte strides inside a decoded chunk
    Py_ssize_t arr_shape[MAX_NDIM]       # shape of the user's output / value array
    Py_ssize_t arr_strides[MAX_NDIM]
    bint arr_c_contiguous
    bint chunk_c_order


cdef int setup_geometry(Geometry* g, tuple chunk_shape, bint f_order, cnp.ndarray arr,
                        const int64_t[:, :, ::1] plan) except -1:
    cdef int d, ndim = len(chunk_shape)
    cdef Py_ssize_t stride
    if ndim > MAX_NDIM:
        raise ValueError(f"exzarr supports at most {MAX_NDIM} dimensions, not {ndim}")
    if arr.ndim != ndim:
        raise ValueError(f"array has {arr.ndim} dimensions, the chunk grid {ndim}")
    if arr.dtype.hasobject:
        raise TypeError("the core moves bytes: arrays of Python objects go through the "
                        "object codecs, not here")
    if plan.shape[0] > 0 and (plan.shape[1] != ndim or plan.shape[2] != 4):
        raise ValueError("plan must have shape (nchunks, ndim, 4)")
    g.ndim = ndim
    g.itemsize = arr.itemsize
    g.chunk_c_order = not f_order or ndim <= 1
    stride = g.itemsize
    for d in range(ndim):
        g.chunk_shape[d] = chunk_shape[d]
        if g.chunk_shape[d] <= 0:
            raise ValueError("chunk dimensions must be positive")
        # Offsets inside a chunk are Py_ssize_t: its byte size must fit, with room.
        if stride > 0 and g.chunk_shape[d] > MAX_CHUNK_BYTES // stride:
            raise ValueError(f"a chunk of shape {chunk_shape} and {g.itemsize}-byte items "
                             f"exceeds {MAX_CHUNK_BYTES} bytes")
        stride *= g.chunk_shape[d]
    stride = g.itemsize
    if f_order:
        for d in range(ndim):
            g.chunk_strides[d] = stride
            stride *= g.chunk_shape[d]
    else:
        for d in range(ndim - 1, -1, -1):
            g.chunk_strides[d] = stride
            stride *= g.chunk_shape[d]
    g.chunk_nbytes = stride
    for d in range(ndim):
        g.arr_shape[d] = arr.shape[d]
        g.arr_strides[d] = arr.strides[d]
    g.arr_c_contiguous = cnp.PyArray_IS_C_CONTIGUOUS(arr)
    # Every region of the plan must lie inside its chunk and inside the array.
    # Compared so that nothing overflows: counts, starts and steps may be anything.
    cdef Py_ssize_t i, cs, step, os, cnt, last, n
    cdef bint bad
    for i in range(plan.shape[0]):
        for d in range(ndim):
            cs = plan[i, d, 0]
            step = plan[i, d, 1]
            os = plan[i, d, 2]
            cnt = plan[i, d, 3]
            n = g.chunk_shape[d]
            bad = (cnt < 0 or step == 0 or os < 0 or os > g.arr_shape[d]
                   or cnt > g.arr_shape[d] - os)
            if not bad and cnt > 0:
                bad = cs < 0 or cs >= n
                if not bad and cnt > 1:
                    # |step| <= n, then (cnt - 1) * |step| <= n - 1 keeps the last index
                    # inside the chunk, and the product fits.
                    bad = step > n or step < -n or cnt - 1 > (n - 1) // (step if step > 0 else -step)
                    if not bad:
                        last = cs + (cnt - 1) * step
                        bad = last < 0 or last >= n
            if bad:
                raise ValueError(f"plan entry {i} dimension {d} lies outside its chunk or array")
    return 0


cdef bint region_is_whole_contiguous(const Geometry* g, const int64_t[:, :, ::1] plan,
                                     Py_ssize_t i, char** start) noexcept nogil:
    """True when chunk i is selected whole and maps onto one contiguous block of arr."""
    cdef int d
    cdef bint inner_full = True
    cdef Py_ssize_t off = 0
    if not (g.chunk_c_order and g.arr_c_contiguous):
        return False
    for d in range(g.ndim - 1, -1, -1):
        if plan[i, d, 0] != 0 or plan[i, d, 1] != 1 or plan[i, d, 3] != g.chunk_shape[d]:
            return False
        if not inner_full and plan[i, d, 3] != 1:
            return False
        if plan[i, d, 3] != g.arr_shape[d]:
            inner_full = False
        off += plan[i, d, 2] * g.arr_strides[d]
    start[0] += off
    return True


cdef void region_pointers(const Geometry* g, const int64_t[:, :, ::1] plan, Py_ssize_t i,
                          char* chunk, char* arr, char** cptr, char** aptr,
                          Py_ssize_t* cstrides, Py_ssize_t* astrides,
                          Py_ssize_t* counts) noexcept nogil:
    cdef int d
    cdef Py_ssize_t coff = 0, aoff = 0
    for d in range(g.ndim):
        coff += plan[i, d, 0] * g.chunk_strides[d]
        aoff += plan[i, d, 2] * g.arr_strides[d]
        cstrides[d] = g.chunk_strides[d] * plan[i, d, 1]
        astrides[d] = g.arr_strides[d]
        counts[d] = plan[i, d, 3]
    cptr[0] = chunk + coff
    aptr[0] = arr + aoff


cdef class _Buffers:
    """Read-only views of a list of bytes-like objects (None allowed), held for a call."""
    cdef Py_buffer* views
    cdef char* present
    cdef Py_ssize_t n

    def __cinit__(self, list objs):
        self.n = len(objs)
        self.views = <Py_buffer*>calloc(max(self.n, 1), sizeof(Py_buffer))
        self.present = <char*>calloc(max(self.n, 1), 1)
        if self.views == NULL or self.present == NULL:
            raise MemoryError()
        for i in range(self.n):
            if objs[i] is not None:
                PyObject_GetBuffer(objs[i], &self.views[i], PyBUF_SIMPLE)
                self.present[i] = 1

    def __dealloc__(self):
        if self.views != NULL:
            for i in range(self.n):
                if self.present[i]:
                    PyBuffer_Release(&self.views[i])
        free(self.views)
        free(self.present)


cdef extern from *:
    """
    static inline Py_ssize_t exzarr_fetch_add(Py_ssize_t *p, Py_ssize_t v) {
        return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    }
    static inline void exzarr_store_flag(int *p) { __atomic_store_n(p, 1, __ATOMIC_RELAXED); }
    static inline int exzarr_load_flag(int *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    """
    Py_ssize_t exzarr_fetch_add(Py_ssize_t* p, Py_ssize_t v) nogil
    void exzarr_store_flag(int* p) nogil
    int exzarr_load_flag(int* p) nogil


cdef struct Claims:
    Py_ssize_t next     # the next chunk index nobody has taken
    int abort           # set by a call that failed: the others stop early


cdef class WorkCursor:
    """Chunk indices shared by the worker threads of one batch call.

    Every thread runs the same batch call over the whole plan with the same cursor and
    claims chunks one at a time, so a thread slowed down by the machine does not hold
    the others back with a fixed share; a failure in one thread stops the others.
    """
    cdef Claims c

    def __cinit__(self):
        self.c.next = 0
        self.c.abort = 0

    def __repr__(self):
        return f"<exzarr._core.WorkCursor next={self.c.next} abort={bool(self.c.abort)}>"


cdef inline Py_ssize_t next_chunk(Claims* cl, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The chunk after i: the next in order, or the next unclaimed one with a cursor."""
    if cl == NULL:
        return i + 1
    if exzarr_load_flag(&cl.abort):
        return n
    return exzarr_fetch_add(&cl.next, 1)


cdef inline void stop_others(Claims* cl) noexcept nogil:
    if cl != NULL:
        exzarr_store_flag(&cl.abort)


def _raise_for_status(int status, Py_ssize_t index, detail):
    from exzarr.errors import _ChunkFailure
    raise _ChunkFailure(status, index, detail)


# --------------------------------------------------------------------------------------
# Batch calls
# --------------------------------------------------------------------------------------

def decode_into(Pipeline pipe not None, list sources not None, cnp.ndarray out not None,
                const int64_t[:, :, ::1] plan, tuple chunk_shape not None, bint f_order,
                bytes fill not None, list paths=None, const uint8_t[::1] partial=None,
                Workspace workspace=None, WorkCursor cursor=None):
    """Decode a batch of chunks into regions of ``out``, with the GIL released.

    Parameters
    ----------
    pipe : Pipeline
        The codec chain.
    sources : list of bytes-like or None
        Encoded chunk bytes, one per plan entry; ``None`` for a missing chunk, whose
        region is filled with ``fill``.
    out : numpy.ndarray
        Writable output with the array's number of dimensions and dtype.
    plan : int64 array of shape (nchunks, ndim, 4)
        Per chunk and dimension: start and step inside the chunk, start inside
        ``out``, and count.
    chunk_shape : tuple of int
        The stored (padded) chunk shape.
    f_order : bool
        Whether elements inside a chunk are in Fortran order.
    fill : bytes
        One element of fill value in the array's dtype.
    paths : list of bytes, optional
        Chunk file paths to read (without the GIL) instead of ``sources``; a missing
        file is a missing chunk.
    partial : uint8 array, optional
        Per chunk, nonzero when the read takes only part of the chunk's in-bounds
        elements: zstd and lz4 then stop decoding after the last byte it needs. Reads
        of whole chunks always decode (and so verify) everything.
    workspace : Workspace, optional
        The calling thread's reusable contexts and buffers.
    cursor : WorkCursor, optional
        Shared with other threads running the same call: each takes the next chunk
        nobody has taken yet, instead of every chunk in order.

    Raises
    ------
    exzarr.errors._ChunkFailure
        With the status, the failing chunk's index in ``sources`` and a detail text;
        the array layer turns it into :class:`~exzarr.errors.CorruptChunkError`.
    """
    cdef Geometry g
    cdef Workspace ws = workspace if workspace is not None else Workspace()
    cdef Ctx* c = &ws.c
    cdef Py_ssize_t i, n = len(sources)
    cdef int st = ST_OK
    cdef Py_ssize_t failed = -1
    cdef uint8_t* scratch = NULL
    cdef char* base
    cdef char* target
    cdef char* cptr
    cdef char* aptr
    cdef Py_ssize_t cstrides[MAX_NDIM]
    cdef Py_ssize_t astrides[MAX_NDIM]
    cdef Py_ssize_t counts[MAX_NDIM]
    cdef const char* pattern = PyBytes_AS_STRING(fill)
    cdef const uint8_t* src
    cdef Py_ssize_t srclen
    cdef size_t need
    cdef bint raw = pipe.nsteps == 1 and pipe.steps[0].kind == STEP_RAW
    cdef bint has_partial = partial is not None
    cdef bint use_files = paths is not None
    cdef _Paths files = _Paths(paths if use_files else [])
    if use_files and len(paths) != n:
        raise ValueError("paths and sources differ in length")
    if plan.shape[0] != n or (has_partial and partial.shape[0] != n):
        raise ValueError("plan and sources differ in length")
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError("output array is read-only")
    setup_geometry(&g, chunk_shape, f_order, out, plan)
    if len(fill) != g.itemsize:
        raise ValueError("fill must be one element")
    cdef _Buffers bufs = _Buffers(sources)
    cdef Claims* claims = &cursor.c if cursor is not None else NULL
    # A result bigger than the caches is written around them (see copy_nd_out).
    cdef bint stream = <size_t>cnp.PyArray_NBYTES(out) >= STREAM_MIN_OUT
    c.detail = NULL
    base = <char*>cnp.PyArray_DATA(out)
    with nogil:
        i = -1
        while True:
            i = next_chunk(claims, i, n)
            if i >= n:
                break
            if use_files and raw:
                target = base
                if whole_chunk_rows(&g, plan, i, &target):
                    st = read_file_scattered(c, files.ptrs[i], &g, target)
                    if st == -1:  # missing: fill
                        st = ST_OK
                        region_pointers(&g, plan, i, NULL, base, &cptr, &aptr, cstrides, astrides, counts)
                        fill_nd(aptr, astrides, counts, g.ndim, pattern, g.itemsize)
                    if st != ST_OK:
                        failed = i
                        break
                    continue
            if use_files:
                srclen = read_whole_file(c, files.ptrs[i])
                if srclen == -2:
                    st = ST_IO
                    failed = i
                    break
                src = c.fbuf
            else:
                srclen = bufs.views[i].len if bufs.present[i] else -1
                src = <const uint8_t*>bufs.views[i].buf
            if srclen < 0:
                region_pointers(&g, plan, i, NULL, base, &cptr, &aptr, cstrides, astrides, counts)
                fill_nd(aptr, astrides, counts, g.ndim, pattern, g.itemsize)
                continue
            target = base
            if region_is_whole_contiguous(&g, plan, i, &target):
                st = decode_chain(c, pipe.steps, pipe.nsteps, src, srclen, <uint8_t*>target,
                                  g.chunk_nbytes)
            else:
                if raw:
                    # Nothing to decode: copy the region straight from the stored bytes.
                    if <size_t>srclen != g.chunk_nbytes:
                        c.detail = "stored size differs from the chunk size"
                        st = ST_SIZE
                        failed = i
                        break
                    region_pointers(&g, plan, i, <char*>src, base, &cptr, &aptr,
                                    cstrides, astrides, counts)
                    copy_nd_out(aptr, astrides, cptr, cstrides, counts, g.ndim,
                                g.itemsize, stream)
                    continue
                scratch = ws.scratch_for(g.chunk_nbytes)
                if scratch == NULL:
                    st = ST_NOMEM
                    failed = i
                    break
                need = region_extent(&g, plan, i) if has_partial and partial[i] else g.chunk_nbytes
                if pipe.nsteps == 1 and need < g.chunk_nbytes:
                    st = decompress_prefix(c, &pipe.steps[0], src, srclen, scratch, need,
                                           g.chunk_nbytes)
                else:
                    st = decode_chain(c, pipe.steps, pipe.nsteps, src, srclen, scratch,
                                      g.chunk_nbytes)
                if st == ST_OK:
                    region_pointers(&g, plan, i, <char*>scratch, base, &cptr, &aptr,
                                    cstrides, astrides, counts)
                    copy_nd_out(aptr, astrides, cptr, cstrides, counts, g.ndim,
                                g.itemsize, stream)
            if st != ST_OK:
                failed = i
                break
        if st != ST_OK:
            stop_others(claims)
        ws.trim()
    if st != ST_OK:
        _raise_for_status(st, failed, _file_detail(c, st, paths, failed))


cdef object _file_detail(Ctx* c, int st, list paths, Py_ssize_t i):
    """_detail, with the chunk file's path (as a str) for a failure of its file."""
    if st != ST_IO or paths is None or not 0 <= i < len(paths):
        return _detail(c, st)
    import os
    text = (<bytes>c.detail).decode() if c.detail != NULL else ""
    return (c.err, text, os.fsdecode(paths[i]))


cdef object _detail(Ctx* c, int st):
    if st == ST_IO:
        return c.err
    return (<bytes>c.detail).decode() if c.detail != NULL else ""


cdef Py_ssize_t blosc_rows(Ctx* c, const Step* s, const BloscPlan* bp, const Geometry* g,
                           const char* rows, uint8_t* tmp, uint8_t* dst,
                           size_t cap) noexcept nogil:
    """The c-blosc frame (lz4, byte shuffle) of a whole chunk, shuffled straight from its
    rows in the user's array; its length, or -1 where c-blosc must make it itself.

    c-blosc would need the chunk gathered into a buffer of its own first, then shuffle
    it block by block into another, then copy the streams lz4 cannot shrink into the
    frame: here each block is shuffled from the rows into the frame itself where it fits
    (else into ``tmp``, ``bp.blocksize`` bytes or more), so that a stream stored as it
    is was written once. The bytes are
    c-blosc 1.x's: its block size and split (``bp``, see Pipeline.blosc_rows_plan),
    a start offset per block, then per stream a little-endian length and the lz4 block
    at acceleration 10 - clevel, or the stream as it is where lz4 cannot shrink it. The
    last block, if shorter, is one stream. Where a stored stream would not fit ``cap``,
    c-blosc stores the whole chunk as it is instead; that, and a failing allocation,
    gives -1 (the caller gathers the chunk and calls c-blosc).
    """
    cdef size_t n = g.chunk_nbytes, bs = bp.blocksize, ts = s.typesize
    cdef size_t nblocks = (n + bs - 1) // bs
    cdef size_t pos = 16 + 4 * nblocks
    cdef size_t row_bytes = <size_t>g.chunk_shape[g.ndim - 1] * <size_t>g.itemsize
    cdef size_t b, bsize, nel, e, take, roff = 0, neblock, stride
    cdef uint8_t* plane
    cdef uint8_t* stream
    cdef uint8_t* packed
    cdef bint in_place
    cdef Py_ssize_t r = 0
    cdef int j, nsplit, k
    cdef const char* row = rows
    cdef Py_ssize_t nrows = chunk_rows(g)
    # Rows far apart in the array: each is asked for while the one SHUFFLE_AHEAD_ROWS
    # before it is shuffled (see _lib/shuffle.h); the last rows have none ahead.
    cdef Py_ssize_t last_ahead = (nrows - SHUFFLE_AHEAD_ROWS if g.ndim >= 2 and rows_far_apart(
        <Py_ssize_t>row_bytes, g.arr_strides[g.ndim - 2]) else 0)
    cdef const char* ahead
    if pos > cap or row_bytes == 0 or row_bytes % ts != 0:
        return -1
    if c.lz4state == NULL:
        c.lz4state = malloc(<size_t>LZ4_sizeofState())
        if c.lz4state == NULL:
            return -1
    memcpy(dst, bp.head, 4)
    store_le32(dst + 4, <uint32_t>n)
    store_le32(dst + 8, <uint32_t>bs)
    for b in range(nblocks):
        bsize = min(bs, n - b * bs)
        nel = bsize // ts
        nsplit = bp.nsplits if bsize == bs else 1
        neblock = bsize // <size_t>nsplit
        store_le32(dst + 16 + 4 * b, <uint32_t>pos)
        # Streams lz4 cannot shrink are stored as they are: where the block fits ``dst``
        # with every stream stored, it is shuffled there, each stream in the place it
        # takes if all before it are stored too, and only the streams that shrink (and
        # any stored one after them) move; else into ``tmp``.
        in_place = pos + <size_t>nsplit * (4 + neblock) <= cap
        if in_place:
            plane = dst + pos + 4
            stride = 4 + neblock if nsplit > 1 else nel
        else:
            plane = tmp
            stride = nel
        e = 0
        while e < nel:  # the block's elements, row by row (a block may end mid-row)
            take = min(nel - e, (row_bytes - roff) // ts)
            ahead = rows + row_offset(g, r + SHUFFLE_AHEAD_ROWS) + roff if r < last_ahead else NULL
            exzarr_shuffle_into(<const uint8_t*>row + roff, take, ts, plane + e, stride,
                                <const uint8_t*>ahead)
            e += take
            roff += take * ts
            if roff == row_bytes:
                roff = 0
                r += 1
                if r < nrows:
                    row = rows + row_offset(g, r)
        for j in range(nsplit):
            stream = plane + <size_t>j * stride
            if pos + 4 + neblock > cap:
                return -1
            # In place the stream may sit where its lz4 block goes: compressed aside.
            packed = tmp if in_place else dst + pos + 4
            k = LZ4_compress_fast_extState(c.lz4state, <const char*>stream, <char*>packed,
                                           <int>neblock, <int>neblock, 10 - s.level)
            if k > 0 and <size_t>k < neblock:
                if packed != dst + pos + 4:
                    memcpy(dst + pos + 4, packed, <size_t>k)
            else:
                k = <int>neblock
                if stream != dst + pos + 4:
                    memmove(dst + pos + 4, stream, neblock)
            store_le32(dst + pos, <uint32_t>k)
            pos += 4 + <size_t>k
    store_le32(dst + 12, <uint32_t>pos)
    return <Py_ssize_t>pos


cdef int encode_whole(Ctx* c, const Step* steps, int nsteps, const BloscPlan* bp,
                      const Geometry* g, const uint8_t* data, const char* frows,
                      uint8_t* scratch, uint8_t* dst, size_t cap,
                      size_t* outlen) noexcept nogil:
    """encode_chain of a chunk: ``data``, or with ``frows`` set the rows of a whole chunk
    in the user's array, encoded by blosc_rows where it can; otherwise from ``data``, or
    where that is NULL from the rows gathered into ``scratch``."""
    cdef Py_ssize_t k
    if frows != NULL:
        k = blosc_rows(c, &steps[0], bp, g, frows, scratch, dst, cap)
        if k > 0:
            outlen[0] = <size_t>k
            return ST_OK
        if data == NULL:
            copy_nd(<char*>scratch, g.chunk_strides, frows, g.arr_strides, g.chunk_shape,
                    g.ndim, g.itemsize)
            data = scratch
    return encode_chain(c, steps, nsteps, data, g.chunk_nbytes, dst, cap, outlen)


def encode_from(Pipeline pipe not None, cnp.ndarray value not None,
                const int64_t[:, :, ::1] plan, list existing not None,
                tuple chunk_shape not None, bint f_order, bytes fill not None,
                bint write_empty, int nan_kind=0, list paths=None, list tmp_paths=None,
                Workspace workspace=None, WorkCursor cursor=None, fsync=None):
    """Encode a batch of chunks from regions of ``value``, with the GIL released.

    Parameters
    ----------
    pipe : Pipeline
        The codec chain.
    value : numpy.ndarray
        The data to store, with the array's number of dimensions and dtype.
    plan : int64 array of shape (nchunks, ndim, 4)
        As for :func:`decode_into`, with ``value`` in the place of ``out``.
    existing : list of bytes-like or None
        For a chunk only partly covered by the plan, its current encoded bytes
        (``None``: start from fill). Ignored for chunks covered whole.
    chunk_shape, f_order, fill
        As for :func:`decode_into`.
    write_empty : bool
        Store chunks equal to the fill value everywhere; otherwise they come back
        as ``None`` so the caller deletes them.
    nan_kind : int
        4 or 8 when the fill value is NaN in a native float dtype of that size.
    paths, tmp_paths : list of bytes, optional
        Write each chunk straight to its file (through its temporary name and a rename),
        without the GIL, reading partly covered chunks from there too; a chunk that is
        all fill has its file removed. ``existing`` is then ignored.
    workspace, cursor
        As for :func:`decode_into`. With a cursor, chunks another thread took come
        back as ``None`` too.
    fsync : bool, optional
        With ``paths``: sync each chunk file before it is named, and each folder this
        call changed once at the end. None: ``exzarr.config.get("fsync")``.

    Returns
    -------
    list of bytes or None
        Encoded chunks, ``None`` where the chunk is all fill (all ``None`` with ``paths``).
    """
    cdef Geometry g
    cdef Workspace ws = workspace if workspace is not None else Workspace()
    cdef Ctx* c = &ws.c
    cdef Py_ssize_t i, d, n = plan.shape[0]
    cdef int st = ST_OK
    cdef Py_ssize_t failed = -1
    cdef bint whole, is_empty
    cdef bint raw = pipe.nsteps == 1 and pipe.steps[0].kind == STEP_RAW
    cdef BloscPlan bplan
    cdef bint fuse
    cdef char* rows
    cdef char* frows
    cdef uint8_t* scratch = NULL
    cdef uint8_t* reuse = NULL
    cdef const uint8_t* data
    cdef char* base
    cdef char* start
    cdef char* cptr
    cdef char* aptr
    cdef size_t cap
    cdef Py_ssize_t cstrides[MAX_NDIM]
    cdef Py_ssize_t astrides[MAX_NDIM]
    cdef Py_ssize_t counts[MAX_NDIM]
    cdef const char* pattern = PyBytes_AS_STRING(fill)
    cdef bint use_files = paths is not None
    cdef _Paths files = _Paths(paths if use_files else [])
    cdef _Paths tmps = _Paths(tmp_paths if use_files else [])
    cdef Py_ssize_t srclen
    cdef const uint8_t* src
    if use_files and (len(paths) != n or tmp_paths is None or len(tmp_paths) != n):
        raise ValueError("paths and tmp_paths must match the plan")
    if use_files and any(t == p for t, p in zip(tmp_paths, paths)):
        raise ValueError("a temporary path is its chunk's path: the replacement would delete it")
    if nan_kind not in (0, 4, 8) or (nan_kind and nan_kind != value.itemsize):
        raise ValueError(f"nan_kind {nan_kind} is 0 or the float width of the value's items")
    if len(existing) != n:
        raise ValueError("plan and existing differ in length")
    setup_geometry(&g, chunk_shape, f_order, value, plan)
    if len(fill) != g.itemsize:
        raise ValueError("fill must be one element")
    fuse = g.chunk_c_order and pipe.blosc_rows_plan(g.chunk_nbytes, g.itemsize, &bplan)
    cdef _Buffers bufs = _Buffers(existing)
    cdef uint8_t** outs = <uint8_t**>calloc(max(n, 1), sizeof(uint8_t*))
    cdef size_t* lens = <size_t*>calloc(max(n, 1), sizeof(size_t))
    cdef char* empty = <char*>calloc(max(n, 1), 1)
    if outs == NULL or lens == NULL or empty == NULL:
        free(outs); free(lens); free(empty)
        raise MemoryError()
    cdef Claims* claims = &cursor.c if cursor is not None else NULL
    cdef Py_ssize_t run[SMALL_RUN_MAX]
    cdef Py_ssize_t ignored = -1
    cdef int nrun = 0, run_max, first_err
    cdef const char* first_detail
    c.detail = NULL
    c.no_unnamed = 0  # try unnamed files again: this call may write to another file system
    if use_files and fsync is None:
        from exzarr import config
        fsync = config.get("fsync")
    c.sync = 1 if use_files and fsync else 0
    cdef char last_folder[4096]
    last_folder[0] = 0
    base = <char*>cnp.PyArray_DATA(value)
    cap = compress_bound(&pipe.steps[0], pipe.encoded_size(g.chunk_nbytes))
    run_max = <int>max(1, min(SMALL_RUN_MAX, SMALL_RUN_BYTES // max(cap, 1)))
    with nogil:
        i = -1
        while st == ST_OK:
            i = next_chunk(claims, i, n)
            if i >= n:
                break
            if scratch == NULL:
                scratch = ws.scratch_for(g.chunk_nbytes)
                if scratch == NULL:
                    st = ST_NOMEM
                    failed = i
                    break
            start = base
            whole = True
            for d in range(g.ndim):
                if plan[i, d, 0] != 0 or plan[i, d, 1] != 1 or plan[i, d, 3] != g.chunk_shape[d]:
                    whole = False
            rows = NULL
            frows = NULL
            if whole and region_is_whole_contiguous(&g, plan, i, &start):
                data = <const uint8_t*>start
                if fuse:
                    frows = start
            elif whole and raw and use_files and whole_chunk_rows(&g, plan, i, &start):
                # Stored as it is: the file is written straight from the value's rows.
                rows = start
                data = NULL
            elif whole and fuse and whole_chunk_rows(&g, plan, i, &start):
                # Shuffled into blosc's blocks straight from the value's rows.
                frows = start
                data = NULL
            else:
                srclen = -1
                if not whole and use_files:
                    srclen = read_whole_file(c, files.ptrs[i])
                    if srclen == -2:
                        st = ST_IO
                        failed = i
                        break
                    src = c.fbuf
                elif not whole and bufs.present[i]:
                    srclen = bufs.views[i].len
                    src = <const uint8_t*>bufs.views[i].buf
                if srclen >= 0:
                    st = decode_chain(c, pipe.steps, pipe.nsteps, src, srclen,
                                      scratch, g.chunk_nbytes)
                    if st != ST_OK:
                        failed = i
                        break
                elif not whole:
                    fill_nd(<char*>scratch, g.chunk_strides, g.chunk_shape, g.ndim,
                            pattern, g.itemsize)
                region_pointers(&g, plan, i, <char*>scratch, base, &cptr, &aptr,
                                cstrides, astrides, counts)
                copy_nd(cptr, cstrides, aptr, astrides, counts, g.ndim, g.itemsize)
                data = scratch
            if rows != NULL or frows != NULL:
                is_empty = not write_empty and rows_equal_fill(
                    &g, rows if rows != NULL else frows, pattern, nan_kind)
            else:
                is_empty = not write_empty and all_equal_fill(data, g.chunk_nbytes, pattern,
                                                              g.itemsize, nan_kind)
            if is_empty:
                empty[i] = 1
                if use_files and unlink(files.ptrs[i]) != 0 and errno != ENOENT:
                    c.err = errno
                    st = ST_IO
                    failed = i
                    break
                continue
            if rows != NULL:
                st = write_file_atomic(c, tmps.ptrs[i], files.ptrs[i], NULL, 0, &g, rows, False)
                empty[i] = 1
                if st != ST_OK:
                    failed = i
                    break
                continue
            if use_files:
                # Encoded into the run buffer; written when the run is full (one chunk
                # per run unless chunks are small).
                if reuse == NULL:
                    # Kept by the workspace: fresh pages for it on every write cost
                    # 2% of a blosc-lz4 write of 1 MiB chunks (355 page faults).
                    reuse = ctx_buffer(c, BUF_RUN, run_max * cap)
                    if reuse == NULL:
                        st = ST_NOMEM
                        failed = i
                        break
                st = encode_whole(c, pipe.steps, pipe.nsteps, &bplan, &g, data, frows,
                                  scratch, reuse + nrun * cap, cap, &lens[i])
                empty[i] = 1
                if st != ST_OK:
                    failed = i
                    break
                run[nrun] = i
                nrun += 1
                if nrun == run_max:
                    st = write_run(c, tmps, files, run, nrun, reuse, cap, lens, &failed)
                    nrun = 0
                continue
            outs[i] = <uint8_t*>malloc(cap if cap else 1)
            if outs[i] == NULL:
                st = ST_NOMEM
                failed = i
                break
            st = encode_whole(c, pipe.steps, pipe.nsteps, &bplan, &g, data, frows,
                              scratch, outs[i], cap, &lens[i])
            if st != ST_OK:
                failed = i
                break
        if nrun > 0:
            # Chunks encoded before a failure are still written: a failed call leaves
            # every chunk either as it was or fully replaced, whichever it got to.
            if st == ST_OK:
                st = write_run(c, tmps, files, run, nrun, reuse, cap, lens, &failed)
            else:
                first_err, first_detail = c.err, c.detail
                write_run(c, tmps, files, run, nrun, reuse, cap, lens, &ignored)
                c.err, c.detail = first_err, first_detail  # report the first failure
        if c.sync and st == ST_OK:
            # The folders' entries (new names, removed chunks) are durable too.
            for i in range(n):
                if empty[i] and exzarr_sync_folder(files.ptrs[i], last_folder, 4096) != 0:
                    c.err = errno
                    st = ST_IO
                    failed = i
                    break
        c.sync = 0
        if st != ST_OK:
            stop_others(claims)
        ws.trim()
    result = []
    try:
        if st != ST_OK:
            _raise_for_status(st, failed, _file_detail(c, st, paths, failed))
        for i in range(n):
            if empty[i] or outs[i] == NULL:  # all fill, written to its file, or not ours
                result.append(None)
            else:
                result.append(PyBytes_FromStringAndSize(<char*>outs[i], lens[i]))
    finally:
        for i in range(n):
            free(outs[i])
        free(outs)
        free(lens)
        free(empty)
    return result


# --------------------------------------------------------------------------------------
# Single buffers, for the Codec objects (numcodecs-style encode / decode).
# --------------------------------------------------------------------------------------

def encode_buffer(Pipeline pipe not None, data):
    """Run the whole chain over one buffer and return the encoded bytes (blosc's lz4
    frames of 2-, 4- and 8-byte items through blosc_rows, as array writes)."""
    cdef Ctx c
    cdef Py_buffer view
    cdef int st
    cdef size_t outlen = 0, cap
    cdef uint8_t* dst = NULL
    cdef uint8_t* tmp = NULL
    cdef BloscPlan plan
    cdef Geometry g
    cdef Py_ssize_t ts
    cdef bint fuse
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    memset(&c, 0, sizeof(Ctx))
    try:
        cap = compress_bound(&pipe.steps[0], pipe.encoded_size(view.len))
        # The buffer as a chunk of one row: blosc's lz4 frame of 2-, 4- or 8-byte items
        # goes through blosc_rows, as array writes do.
        ts = <Py_ssize_t>pipe.steps[0].typesize
        fuse = (ts > 0 and view.len % ts == 0
                and pipe.blosc_rows_plan(view.len, ts, &plan))
        memset(&g, 0, sizeof(Geometry))
        g.ndim = 1
        g.chunk_nbytes = view.len
        if fuse:
            g.itemsize = ts
            g.chunk_shape[0] = view.len // ts
            g.arr_strides[0] = ts
            g.chunk_c_order = True
        with nogil:
            dst = <uint8_t*>malloc(cap if cap else 1)
            tmp = <uint8_t*>malloc(view.len) if fuse else NULL
            if dst == NULL or (fuse and tmp == NULL):
                st = ST_NOMEM
            else:
                st = encode_whole(&c, pipe.steps, pipe.nsteps, &plan, &g,
                                  <const uint8_t*>view.buf,
                                  <const char*>view.buf if fuse else NULL, tmp, dst, cap,
                                  &outlen)
            free(tmp)
            ctx_free(&c)
        if st != ST_OK:
            _raise_for_status(st, 0, (<bytes>c.detail).decode() if c.detail != NULL else "")
        return PyBytes_FromStringAndSize(<char*>dst, outlen)
    finally:
        free(dst)
        PyBuffer_Release(&view)


cdef bint blosc_plausible(const uint8_t* p, size_t cbytes, size_t nbytes) noexcept nogil:
    """Whether a blosc frame of cbytes can really hold nbytes (a forged header cannot)."""
    cdef uint8_t flags = p[2]
    cdef int codec = (flags >> 5) & 0x7
    cdef size_t ratio
    if flags & 0x2:  # stored uncompressed ("memcpyed"): exactly header + data
        return cbytes == nbytes + 16
    # Each inner codec has a worst-case expansion: byte-oriented LZ codecs stay under
    # 256x, zlib under 1032x, zstd (run-length blocks) under 2**15x.
    ratio = 256 if codec <= 2 else (1032 if codec == 3 else 32768)
    return nbytes <= (cbytes - 16) * ratio


def decoded_size(Pipeline pipe not None, data):
    """The decoded size the stream announces in its header, or -1 if it has none."""
    cdef Py_buffer view
    cdef size_t nbytes = 0
    cdef const uint8_t* p
    cdef int kind = pipe.steps[0].kind
    cdef const Step* f
    cdef size_t m
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t*>view.buf
        if kind == STEP_RAW and pipe.nsteps == 2:
            # One filter: invert its size rule.
            f = &pipe.steps[1]
            m = view.len
            if is_checksum(f.kind):
                return <Py_ssize_t>m - 4 if m >= 4 else -1
            if f.kind == STEP_PACKBITS:
                if m >= 1 and p[0] <= 7 and 8 * (m - 1) >= p[0]:
                    return 8 * (<Py_ssize_t>m - 1) - p[0]
                return -1
            if f.kind == STEP_SHUFFLE:
                return m
            if m % elem_size(f.elem_out):
                return -1
            return m // elem_size(f.elem_out) * elem_size(f.elem)
        if kind == STEP_RAW:
            return view.len
        if kind == STEP_LZ4 and view.len >= 4:
            # An LZ4 block expands at most about 255 times: a larger claim is forged.
            nbytes = load_le32(p)
            if nbytes > <size_t>LZ4_MAX_INPUT_SIZE or nbytes > (<size_t>view.len - 4) * 255 + 16:
                return -1
            return nbytes
        if kind == STEP_BLOSC and view.len >= BLOSC_MIN_HEADER_LENGTH:
            if blosc_cbuffer_validate(p, view.len, &nbytes) == 0 and blosc_plausible(p, view.len, nbytes):
                return nbytes
        return -1
    finally:
        PyBuffer_Release(&view)


def decode_buffer(Pipeline pipe not None, data, out):
    """Decode one buffer into the writable buffer ``out``, which must be exactly its size."""
    cdef Ctx c
    cdef Py_buffer src, dst
    cdef int st
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(out, &dst, PyBUF_SIMPLE | PyBUF_WRITABLE)
    except BaseException:
        PyBuffer_Release(&src)
        raise
    memset(&c, 0, sizeof(Ctx))
    try:
        with nogil:
            st = decode_chain(&c, pipe.steps, pipe.nsteps, <const uint8_t*>src.buf, src.len,
                              <uint8_t*>dst.buf, dst.len)
            ctx_free(&c)
        if st != ST_OK:
            _raise_for_status(st, 0, (<bytes>c.detail).decode() if c.detail != NULL else "")
    finally:
        PyBuffer_Release(&dst)
        PyBuffer_Release(&src)


cdef int zstd_decode_growing(Ctx* c, const uint8_t* src, size_t srclen, size_t limit,
                             uint8_t** out, size_t* outlen) noexcept nogil:
    """Decode zstd frames of unknown decoded size into a buffer grown as output arrives
    (``*out``, to be freed by the caller), refusing more than ``limit`` bytes."""
    cdef ZSTD_inBuffer zin
    cdef ZSTD_outBuffer zout
    cdef size_t r = 0, cap
    cdef unsigned long long stated
    cdef uint8_t* grown
    if srclen == 0:
        c.detail = "no zstd frame (the data is empty)"
        return ST_CORRUPT
    if not zstd_stream_start(c):
        return ST_NOMEM
    cap = srclen * 4 + 1024
    stated = ZSTD_getFrameContentSize(src, srclen)
    if stated < ZSTD_CONTENTSIZE_ERROR and stated <= limit:
        # One frame, as codecs write them, is decoded in one buffer of its stated size
        # (+1, so a frame that is alone ends with room to spare); a false claim costs
        # a regrowth.
        cap = <size_t>stated + 1
    zin.src = src
    zin.size = srclen
    zin.pos = 0
    zout.pos = 0
    while True:
        if cap > limit:
            cap = limit
        grown = <uint8_t*>realloc(out[0], cap if cap else 1)
        if grown == NULL:
            return ST_NOMEM
        out[0] = grown
        zout.dst = grown
        zout.size = cap
        while zin.pos < zin.size or (r != 0 and zout.pos < zout.size):
            r = ZSTD_decompressStream(c.zd, &zout, &zin)
            if ZSTD_isError(r):
                c.detail = ZSTD_getErrorName(r)
                return ST_CORRUPT
            if zout.pos == zout.size:
                break  # more room wanted (or exactly full: one more call tells)
            if zin.pos == zin.size and r != 0:
                c.detail = "zstd data ends inside a frame"
                return ST_CORRUPT
        if zout.pos < zout.size or (zin.pos == zin.size and r == 0):
            break
        if cap >= limit:
            c.detail = "decodes to more than decode_limit_bytes"
            return ST_LIMIT
        cap *= 2
    outlen[0] = zout.pos
    return ST_OK


def decode_buffer_unsized(Pipeline pipe not None, data, Py_ssize_t max_size):
    """Decompress one buffer of unknown decoded size (at most ``max_size`` bytes).

    Only the compressor runs: pipelines with filters know their sizes. zstd output is
    taken as it arrives into a growing buffer; deflate streams, which libdeflate decodes
    in one call only, are retried in doubling buffers up to what deflate can expand to
    (1,032 times) or ``max_size``, whichever is less. Memory follows the real output:
    a stream that expands past ``max_size`` is refused without the cap taken up front.
    """
    cdef Ctx c
    cdef Py_buffer src
    cdef int st = ST_SIZE
    cdef size_t cap, bound, limit, outlen = 0
    cdef const uint8_t* p
    cdef uint8_t* dst = NULL
    cdef uint8_t* grown
    cdef int kind = pipe.steps[0].kind
    if max_size < 0:
        raise ValueError("max_size must be >= 0")
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    memset(&c, 0, sizeof(Ctx))
    limit = <size_t>max_size
    p = <const uint8_t*>src.buf
    try:
        with nogil:
            if kind == STEP_ZSTD:
                st = zstd_decode_growing(&c, p, <size_t>src.len, limit, &dst, &outlen)
            else:
                bound = limit
                if (kind == STEP_ZLIB or kind == STEP_GZIP) and <size_t>src.len < limit // 1032:
                    bound = <size_t>src.len * 1032 + 1024
                cap = <size_t>src.len * 4 + 1024
                if kind == STEP_GZIP and src.len >= 18 and load_le32(p + src.len - 4) > cap:
                    cap = load_le32(p + src.len - 4)  # the last member's size mod 2**32
                while True:
                    if cap > bound:
                        cap = bound
                    grown = <uint8_t*>realloc(dst, cap if cap else 1)
                    if grown == NULL:
                        st = ST_NOMEM
                        break
                    dst = grown
                    st = decompress_any(&c, &pipe.steps[0], p, src.len, dst, cap, &outlen)
                    if st != ST_SIZE or cap >= bound:
                        break
                    cap *= 2
                if st == ST_SIZE and bound == limit:
                    c.detail = "decodes to more than decode_limit_bytes"
                    st = ST_LIMIT
            ctx_free(&c)
        if st != ST_OK:
            _raise_for_status(st, 0, (<bytes>c.detail).decode() if c.detail != NULL else "")
        return PyBytes_FromStringAndSize(<char*>dst, outlen)
    finally:
        free(dst)
        PyBuffer_Release(&src)


def crc32(data, uint32_t value=0):
    """zlib's CRC-32 of a bytes-like object, continued from ``value`` (libdeflate's,
    several times faster than zlib's, with the GIL released)."""
    cdef Py_buffer view
    cdef uint32_t r
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            r = libdeflate_crc32(value, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return r


HUGE_MIN = EXZARR_HUGE_MIN


def empty_huge(shape, dtype):
    """``numpy.empty(shape, dtype)`` with its data 2 MiB aligned, in huge pages.

    The array owns its data as any other; NumPy frees it with the handler of
    _lib/hugealloc.h, which it keeps a reference to. The handler is set for this one
    allocation in the current context only, then the previous one is restored.
    """
    import numpy as np
    old = PyDataMem_SetHandler(exzarr_huge_capsule())
    try:
        return np.empty(shape, dtype)
    finally:
        PyDataMem_SetHandler(old)


def set_reuse_limit(size_t limit):
    """Bytes of freed big read results kept for later reads (_lib/hugealloc.h); returns
    the previous limit. 0 turns the pool off and unmaps what it holds."""
    cdef size_t old
    with nogil:
        old = exzarr_keep_set_limit(limit)
    return old


def reuse_held():
    """Bytes of freed read results the pool holds now."""
    return exzarr_keep_bytes()


def replace_file(tmp, path):
    """Move the file ``tmp`` onto ``path`` atomically (see _lib/fileio.h)."""
    cdef bytes t = os_fsencode(tmp)
    cdef bytes p = os_fsencode(path)
    cdef const char* tp = t
    cdef const char* pp = p
    cdef int rc, err = 0
    with nogil:
        rc = exzarr_replace_file(tp, pp, NULL)
        if rc != 0:
            err = errno  # before anything else can set it
    if rc != 0:
        import os
        raise OSError(err, os.strerror(err), path)


def sync_folder(path):
    """Sync the folder ``path``'s entries (names made, renamed or removed in it) to
    disk; nothing on a file system that cannot sync folders (EINVAL). OSError
    otherwise. The one folder sync of the package (see _lib/fileio.h)."""
    cdef bytes p = os_fsencode(path)
    cdef const char* pp = p
    cdef int rc, err = 0
    with nogil:
        rc = exzarr_fsync_dir(pp)
        if rc != 0:
            err = errno
    if rc != 0:
        import os
        raise OSError(err, os.strerror(err), path)


def os_fsencode(p):
    import os
    return os.fsencode(p)
