# Filter kernels of the exzarr core, included into _core.pyx.
#
# Each filter maps a decoded buffer of n bytes to an encoded buffer of
# filter_encoded_size(n) bytes and back, without the GIL, with numcodecs' exact
# results: integer arithmetic wraps as NumPy's does, float arithmetic runs in the
# precision NumPy would pick, and casts are C casts as NumPy's are.

cdef extern from "_lib/crc32c_table.h" nogil:
    const uint32_t exzarr_crc32c_table[8][256]

cdef extern from "math.h" nogil:
    double nearbyint(double x)
    float nearbyintf(float x)


cdef inline size_t elem_size(int e) noexcept nogil:
    if e == E_I1 or e == E_U1:
        return 1
    if e == E_I2 or e == E_U2:
        return 2
    if e == E_I4 or e == E_U4 or e == E_F4:
        return 4
    return 8


cdef inline bint elem_is_float(int e) noexcept nogil:
    return e == E_F4 or e == E_F8


cdef inline uint64_t load_bits(int e, const uint8_t* p, size_t i) noexcept nogil:
    """An integer element, sign- or zero-extended to 64 bits."""
    if e == E_I1: return <uint64_t><int64_t>(<const int8_t*>p)[i]
    if e == E_U1: return p[i]
    if e == E_I2: return <uint64_t><int64_t>(<const int16_t*>p)[i]
    if e == E_U2: return (<const uint16_t*>p)[i]
    if e == E_I4: return <uint64_t><int64_t>(<const int32_t*>p)[i]
    if e == E_U4: return (<const uint32_t*>p)[i]
    return (<const uint64_t*>p)[i]


cdef inline void store_bits(int e, uint8_t* p, size_t i, uint64_t v) noexcept nogil:
    """Store the low bits of v (a wrapping integer cast)."""
    if e == E_I1 or e == E_U1: p[i] = <uint8_t>v
    elif e == E_I2 or e == E_U2: (<uint16_t*>p)[i] = <uint16_t>v
    elif e == E_I4 or e == E_U4: (<uint32_t*>p)[i] = <uint32_t>v
    else: (<uint64_t*>p)[i] = v


cdef inline double load_f64(int e, const uint8_t* p, size_t i) noexcept nogil:
    if e == E_F8: return (<const double*>p)[i]
    if e == E_F4: return (<const float*>p)[i]
    if e == E_I1: return (<const int8_t*>p)[i]
    if e == E_U1: return p[i]
    if e == E_I2: return (<const int16_t*>p)[i]
    if e == E_U2: return (<const uint16_t*>p)[i]
    if e == E_I4: return (<const int32_t*>p)[i]
    if e == E_U4: return (<const uint32_t*>p)[i]
    if e == E_I8: return <double>(<const int64_t*>p)[i]
    return <double>(<const uint64_t*>p)[i]


cdef inline void store_f64(int e, uint8_t* p, size_t i, double v) noexcept nogil:
    """Store v with a C cast, as NumPy's astype does."""
    if e == E_F8: (<double*>p)[i] = v
    elif e == E_F4: (<float*>p)[i] = <float>v
    elif e == E_I1: (<int8_t*>p)[i] = <int8_t>v
    elif e == E_U1: p[i] = <uint8_t>v
    elif e == E_I2: (<int16_t*>p)[i] = <int16_t>v
    elif e == E_U2: (<uint16_t*>p)[i] = <uint16_t>v
    elif e == E_I4: (<int32_t*>p)[i] = <int32_t>v
    elif e == E_U4: (<uint32_t*>p)[i] = <uint32_t>v
    elif e == E_I8: (<int64_t*>p)[i] = <int64_t>v
    else: (<uint64_t*>p)[i] = <uint64_t>v


# -- delta -------------------------------------------------------------------------------

ctypedef fused same_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t
    float
    double


cdef void delta_encode_same(const same_t* x, same_t* y, size_t n) noexcept nogil:
    cdef size_t i
    if n:
        y[0] = x[0]
    for i in range(1, n):
        y[i] = x[i] - x[i - 1]


cdef void delta_decode_same(const same_t* y, same_t* x, size_t n) noexcept nogil:
    cdef size_t i
    if n:
        x[0] = y[0]
    for i in range(1, n):
        x[i] = x[i - 1] + y[i]


cdef void delta_encode(const Step* s, const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    """n elements of s.elem -> n differences of s.elem_out (computed in s.elem)."""
    cdef size_t i
    cdef uint64_t prev = 0, cur
    cdef double fprev = 0, fcur
    cdef float f4prev = 0, f4cur
    if s.elem == s.elem_out:
        if s.elem == E_F4: delta_encode_same(<const float*>src, <float*>dst, n)
        elif s.elem == E_F8: delta_encode_same(<const double*>src, <double*>dst, n)
        elif elem_size(s.elem) == 1: delta_encode_same(<const uint8_t*>src, <uint8_t*>dst, n)
        elif elem_size(s.elem) == 2: delta_encode_same(<const uint16_t*>src, <uint16_t*>dst, n)
        elif elem_size(s.elem) == 4: delta_encode_same(<const uint32_t*>src, <uint32_t*>dst, n)
        else: delta_encode_same(<const uint64_t*>src, <uint64_t*>dst, n)
        return
    if s.elem == E_F4:
        for i in range(n):
            f4cur = (<const float*>src)[i]
            store_f64(s.elem_out, dst, i, f4cur if i == 0 else <float>(f4cur - f4prev))
            f4prev = f4cur
    elif s.elem == E_F8:
        for i in range(n):
            fcur = (<const double*>src)[i]
            store_f64(s.elem_out, dst, i, fcur if i == 0 else fcur - fprev)
            fprev = fcur
    else:
        for i in range(n):
            cur = load_bits(s.elem, src, i)
            # The difference wraps in the input type: sign-extend its low bits again.
            store_int_as(s.elem_out, dst, i, wrap_to(s.elem, cur if i == 0 else cur - prev))
            prev = cur


cdef inline uint64_t wrap_to(int e, uint64_t v) noexcept nogil:
    """v reduced to type e and extended back to 64 bits (sign-extended when signed)."""
    if e == E_I1: return <uint64_t><int64_t><int8_t>v
    if e == E_U1: return <uint8_t>v
    if e == E_I2: return <uint64_t><int64_t><int16_t>v
    if e == E_U2: return <uint16_t>v
    if e == E_I4: return <uint64_t><int64_t><int32_t>v
    if e == E_U4: return <uint32_t>v
    return v


cdef inline bint elem_is_signed(int e) noexcept nogil:
    return e == E_I1 or e == E_I2 or e == E_I4 or e == E_I8


cdef inline void store_int_as(int e, uint8_t* p, size_t i, uint64_t v) noexcept nogil:
    """Store an integer held in 64 bits into type e (wrapping; as float for float e)."""
    if e == E_F4 or e == E_F8:
        store_f64(e, p, i, <double><int64_t>v)
    else:
        store_bits(e, p, i, v)


cdef void delta_decode(const Step* s, const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    """Cumulative sum of n s.elem_out values, accumulated in s.elem (NumPy's cumsum with out)."""
    cdef size_t i
    cdef uint64_t acc = 0
    cdef double facc = 0
    cdef float f4acc = 0
    if s.elem == s.elem_out:
        if s.elem == E_F4: delta_decode_same(<const float*>src, <float*>dst, n)
        elif s.elem == E_F8: delta_decode_same(<const double*>src, <double*>dst, n)
        elif elem_size(s.elem) == 1: delta_decode_same(<const uint8_t*>src, <uint8_t*>dst, n)
        elif elem_size(s.elem) == 2: delta_decode_same(<const uint16_t*>src, <uint16_t*>dst, n)
        elif elem_size(s.elem) == 4: delta_decode_same(<const uint32_t*>src, <uint32_t*>dst, n)
        else: delta_decode_same(<const uint64_t*>src, <uint64_t*>dst, n)
        return
    if s.elem == E_F4:
        # NumPy's cumsum(out=float32) of wider codes runs the sum in the wider type and
        # rounds each partial sum on the way out.
        for i in range(n):
            facc = load_f64(s.elem_out, src, i) if i == 0 else facc + load_f64(s.elem_out, src, i)
            (<float*>dst)[i] = <float>facc
    elif s.elem == E_F8:
        for i in range(n):
            facc = load_f64(s.elem_out, src, i) if i == 0 else facc + load_f64(s.elem_out, src, i)
            (<double*>dst)[i] = facc
    else:
        for i in range(n):
            if elem_is_float(s.elem_out):
                acc += <uint64_t><int64_t>load_f64(s.elem_out, src, i)
            else:
                acc += load_bits(s.elem_out, src, i)
            store_bits(s.elem, dst, i, acc)


# -- quantize, fixedscaleoffset, astype, bitround ---------------------------------------------

cdef void quantize_encode(const Step* s, const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    """round(scale * x) / scale in the input's precision, cast to the output type."""
    cdef size_t i
    cdef float sf = <float>s.scale
    cdef float xf
    if s.elem == E_F4:
        for i in range(n):
            xf = nearbyintf(sf * (<const float*>src)[i]) / sf
            store_f64(s.elem_out, dst, i, xf)
    else:
        for i in range(n):
            store_f64(s.elem_out, dst, i, nearbyint(s.scale * (<const double*>src)[i]) / s.scale)


cdef void cast_elements(int e_from, const uint8_t* src, int e_to, uint8_t* dst, size_t n) noexcept nogil:
    cdef size_t i
    if e_from == e_to:
        if dst != src:
            memcpy(dst, src, n * elem_size(e_from))
    elif elem_is_float(e_from) or elem_is_float(e_to):
        for i in range(n):
            store_f64(e_to, dst, i, load_f64(e_from, src, i))
    else:
        for i in range(n):
            store_bits(e_to, dst, i, load_bits(e_from, src, i))


cdef void fso_encode(const Step* s, const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    """round((x - offset) * scale) computed in the float input's precision, then cast."""
    cdef size_t i
    cdef float of = <float>s.offset, sf = <float>s.scale
    if s.elem == E_F4:
        for i in range(n):
            store_f64(s.elem_out, dst, i, nearbyintf(((<const float*>src)[i] - of) * sf))
    else:
        for i in range(n):
            store_f64(s.elem_out, dst, i, nearbyint(((<const double*>src)[i] - s.offset) * s.scale))


cdef void fso_decode(const Step* s, const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    """enc / scale + offset (float64 for integer codes, float32 for float32 codes), cast."""
    cdef size_t i
    cdef float of = <float>s.offset, sf = <float>s.scale
    if s.elem_out == E_F4:
        for i in range(n):
            store_f64(s.elem, dst, i, (<const float*>src)[i] / sf + of)
    else:
        for i in range(n):
            store_f64(s.elem, dst, i, load_f64(s.elem_out, src, i) / s.scale + s.offset)


cdef void bitround_inplace(const Step* s, uint8_t* buf, size_t n) noexcept nogil:
    cdef size_t i
    cdef int bits = 23 if s.elem == E_F4 else 52
    cdef int maskbits = bits - s.param
    cdef uint32_t m4, h4, v4
    cdef uint64_t m8, h8, v8
    if maskbits <= 0:
        return
    if s.elem == E_F4:
        m4 = ~((<uint32_t>1 << maskbits) - 1)
        h4 = (<uint32_t>1 << (maskbits - 1)) - 1
        for i in range(n):
            v4 = (<uint32_t*>buf)[i]
            v4 += ((v4 >> maskbits) & 1) + h4
            (<uint32_t*>buf)[i] = v4 & m4
    else:
        m8 = ~((<uint64_t>1 << maskbits) - 1)
        h8 = (<uint64_t>1 << (maskbits - 1)) - 1
        for i in range(n):
            v8 = (<uint64_t*>buf)[i]
            v8 += ((v8 >> maskbits) & 1) + h8
            (<uint64_t*>buf)[i] = v8 & m8


# -- byte shuffle and packbits ---------------------------------------------------------------

cdef void shuffle_bytes(const uint8_t* src, uint8_t* dst, size_t n, size_t es, bint encode) noexcept nogil:
    cdef size_t count, i, b
    if es <= 1:
        memcpy(dst, src, n)
        return
    count = n // es
    if encode:
        for b in range(es):
            for i in range(count):
                dst[b * count + i] = src[i * es + b]
    else:
        for i in range(count):
            for b in range(es):
                dst[i * es + b] = src[b * count + i]


cdef void packbits_encode(const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    cdef size_t i, nbytes = (n + 7) // 8
    cdef uint8_t acc
    dst[0] = <uint8_t>((8 - n % 8) % 8)
    memset(dst + 1, 0, nbytes)
    for i in range(n):
        if src[i]:
            dst[1 + i // 8] |= <uint8_t>(0x80 >> (i % 8))


cdef void packbits_decode(const uint8_t* src, uint8_t* dst, size_t n) noexcept nogil:
    cdef size_t i
    for i in range(n):
        dst[i] = (src[1 + i // 8] >> (7 - i % 8)) & 1


# -- checksums -------------------------------------------------------------------------------

cdef uint32_t crc32c(const uint8_t* p, size_t n) noexcept nogil:
    cdef uint32_t c = 0xFFFFFFFFU
    cdef uint64_t w
    while n >= 8:
        memcpy(&w, p, 8)
        w ^= c  # little-endian hosts: the low word absorbs the running CRC
        c = (exzarr_crc32c_table[7][w & 0xFF] ^ exzarr_crc32c_table[6][(w >> 8) & 0xFF]
             ^ exzarr_crc32c_table[5][(w >> 16) & 0xFF] ^ exzarr_crc32c_table[4][(w >> 24) & 0xFF]
             ^ exzarr_crc32c_table[3][(w >> 32) & 0xFF] ^ exzarr_crc32c_table[2][(w >> 40) & 0xFF]
             ^ exzarr_crc32c_table[1][(w >> 48) & 0xFF] ^ exzarr_crc32c_table[0][w >> 56])
        p += 8
        n -= 8
    while n:
        c = (c >> 8) ^ exzarr_crc32c_table[0][(c ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return c ^ 0xFFFFFFFFU


cdef uint32_t fletcher32(const uint8_t* data, size_t nbytes) noexcept nogil:
    """HDF5's Fletcher-32 over big-endian 16-bit words (numcodecs' definition)."""
    cdef size_t words = nbytes // 2, t
    cdef uint32_t s1 = 0, s2 = 0
    while words:
        t = 360 if words > 360 else words
        words -= t
        while t:
            s1 += (<uint32_t>data[0] << 8) | data[1]
            s2 += s1
            data += 2
            t -= 1
        s1 = (s1 & 0xFFFF) + (s1 >> 16)
        s2 = (s2 & 0xFFFF) + (s2 >> 16)
    if nbytes % 2:
        s1 += <uint32_t>data[0] << 8
        s2 += s1
        s1 = (s1 & 0xFFFF) + (s1 >> 16)
        s2 = (s2 & 0xFFFF) + (s2 >> 16)
    s1 = (s1 & 0xFFFF) + (s1 >> 16)
    s2 = (s2 & 0xFFFF) + (s2 >> 16)
    return (s2 << 16) | s1


cdef uint32_t checksum_of(const Step* s, const uint8_t* p, size_t n) noexcept nogil:
    if s.kind == STEP_CRC32:
        return libdeflate_crc32(0, p, n)
    if s.kind == STEP_ADLER32:
        return libdeflate_adler32(1, p, n)
    if s.kind == STEP_CRC32C:
        return crc32c(p, n)
    return fletcher32(p, n)


# -- dispatch --------------------------------------------------------------------------------

cdef inline bint is_checksum(int kind) noexcept nogil:
    return kind == STEP_CRC32 or kind == STEP_ADLER32 or kind == STEP_CRC32C or kind == STEP_FLETCHER32


cdef size_t filter_encoded_size(const Step* s, size_t n) noexcept nogil:
    """Encoded size for n decoded bytes, or SIZE_ERR when n does not fit the filter."""
    cdef size_t es
    if is_checksum(s.kind):
        return n + 4
    if s.kind == STEP_PACKBITS:
        return 1 + (n + 7) // 8
    if s.kind == STEP_SHUFFLE:
        return n if s.param <= 1 or n % <size_t>s.param == 0 else SIZE_ERR
    es = elem_size(s.elem)
    if n % es:
        return SIZE_ERR
    return n // es * elem_size(s.elem_out)


cdef int filter_encode(Ctx* c, const Step* s, const uint8_t* src, size_t n, uint8_t* dst) noexcept nogil:
    cdef size_t count = n // elem_size(s.elem)
    cdef uint32_t sum
    if s.kind == STEP_DELTA:
        delta_encode(s, src, dst, count)
    elif s.kind == STEP_QUANTIZE:
        quantize_encode(s, src, dst, count)
    elif s.kind == STEP_FSO:
        fso_encode(s, src, dst, count)
    elif s.kind == STEP_ASTYPE:
        cast_elements(s.elem, src, s.elem_out, dst, count)
    elif s.kind == STEP_BITROUND:
        memcpy(dst, src, n)
        bitround_inplace(s, dst, count)
    elif s.kind == STEP_SHUFFLE:
        shuffle_bytes(src, dst, n, s.param, True)
    elif s.kind == STEP_PACKBITS:
        packbits_encode(src, dst, n)
    elif is_checksum(s.kind):
        sum = checksum_of(s, src, n)
        if s.param == 0:  # at the start
            store_le32(dst, sum)
            memcpy(dst + 4, src, n)
        else:
            memcpy(dst, src, n)
            store_le32(dst + n, sum)
    else:
        c.detail = "unknown filter step"
        return ST_ENCODE
    return ST_OK


cdef int filter_decode(Ctx* c, const Step* s, const uint8_t* src, size_t m, uint8_t* dst,
                       size_t n) noexcept nogil:
    """Decode m encoded bytes into exactly n bytes."""
    cdef size_t count = n // elem_size(s.elem)
    cdef const uint8_t* payload
    if filter_encoded_size(s, n) != m:
        c.detail = "filtered data has the wrong size for the chunk"
        return ST_SIZE
    if s.kind == STEP_DELTA:
        delta_decode(s, src, dst, count)
    elif s.kind == STEP_QUANTIZE or s.kind == STEP_ASTYPE:
        cast_elements(s.elem_out, src, s.elem, dst, count)
    elif s.kind == STEP_FSO:
        fso_decode(s, src, dst, count)
    elif s.kind == STEP_BITROUND:
        if dst != src:
            memcpy(dst, src, n)
    elif s.kind == STEP_SHUFFLE:
        shuffle_bytes(src, dst, n, s.param, False)
    elif s.kind == STEP_PACKBITS:
        if src[0] > 7 or (8 - n % 8) % 8 != src[0]:
            c.detail = "packbits padding byte does not match the chunk size"
            return ST_CORRUPT
        packbits_decode(src, dst, n)
    elif is_checksum(s.kind):
        payload = src + 4 if s.param == 0 else src
        if checksum_of(s, payload, n) != load_le32(src if s.param == 0 else src + n):
            c.detail = "stored checksum does not match the data"
            return ST_CHECKSUM
        memcpy(dst, payload, n)
    else:
        c.detail = "unknown filter step"
        return ST_CORRUPT
    return ST_OK
