/* Byte shuffle (blosc's, numcodecs' "shuffle") of a run of elements into streams.
 *
 * exzarr_shuffle_into(src, n, ts, dst, stride) reads n elements of ts bytes from src
 * and writes byte j of element e to dst[j * stride + e]: stream j starts at
 * dst + j * stride. With stride equal to the block's element count this is blosc's
 * shuffled block; a block can then be filled run by run (one row of a chunk at a time,
 * at dst + the elements already placed), straight from the rows of the caller's array,
 * without first gathering the chunk into a buffer of its own.
 *
 * 4-byte elements (float32, int32) take a 16-element SSE2 transpose; the rest, and the
 * tail of a run, go byte by byte.
 */
#ifndef EXZARR_SHUFFLE_H
#define EXZARR_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define EXZARR_SHUFFLE4_FAST 1 /* 4-byte elements have a vector kernel here */
#else
#define EXZARR_SHUFFLE4_FAST 0
#endif

static inline void exzarr_shuffle_into(const uint8_t *src, size_t n, size_t ts, uint8_t *dst,
                                       size_t stride)
{
    size_t e = 0, j;
#if defined(__SSE2__)
    if (ts == 4) {
        for (; e + 16 <= n; e += 16) {
            const uint8_t *s = src + 4 * e;
            __m128i a = _mm_loadu_si128((const __m128i *)s);
            __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(s + 48));
            /* Three rounds of byte interleaving sort each register pair's bytes by their
             * place in the element; the last step joins a,b's half with c,d's. */
            __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
            __m128i cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
            __m128i x0 = _mm_unpacklo_epi8(ab0, ab1), x1 = _mm_unpackhi_epi8(ab0, ab1);
            __m128i y0 = _mm_unpacklo_epi8(cd0, cd1), y1 = _mm_unpackhi_epi8(cd0, cd1);
            __m128i p0 = _mm_unpacklo_epi8(x0, x1), p1 = _mm_unpackhi_epi8(x0, x1);
            __m128i q0 = _mm_unpacklo_epi8(y0, y1), q1 = _mm_unpackhi_epi8(y0, y1);
            _mm_storeu_si128((__m128i *)(dst + e), _mm_unpacklo_epi64(p0, q0));
            _mm_storeu_si128((__m128i *)(dst + stride + e), _mm_unpackhi_epi64(p0, q0));
            _mm_storeu_si128((__m128i *)(dst + 2 * stride + e), _mm_unpacklo_epi64(p1, q1));
            _mm_storeu_si128((__m128i *)(dst + 3 * stride + e), _mm_unpackhi_epi64(p1, q1));
        }
    }
#endif
    for (; e < n; e++)
        for (j = 0; j < ts; j++)
            dst[j * stride + e] = src[e * ts + j];
}

#endif /* EXZARR_SHUFFLE_H */
