/*
 * crossent_rows_impl.h -- the body of the row/block functions, compiled once
 * per SIMD variant.  A crossent_rows_<variant>.c file defines CE_VARIANT
 * (baseline, avx2, avx512), sets the target, and includes this file; the
 * functions come out static with the variant in their name, and the only
 * external symbol is the variant's table ce_rows_table_<variant>.
 *
 * The float32 and float64 versions are one template (crossent_rows_typed.h)
 * included twice.
 *
 * Determinism across variants: every reduction runs over CE_LANES explicit
 * lane accumulators (element i goes to lane i % CE_LANES) combined by a fixed
 * tree, and the build has -ffp-contract=off and no -ffast-math, so the
 * vectoriser may only map lanes onto registers -- it cannot reorder a sum or
 * fuse a multiply-add.  Hence every variant gives the same bits.
 *
 * The variant files compile this body with -fno-trapping-math (a pragma, so
 * it holds whatever the build flags): the primitives of crossent_math.h
 * end in selects (overflow -> inf, log(0) -> -inf, ...), and under the
 * default -ftrapping-math GCC sinks the arithmetic into the branch that uses
 * it and then refuses to if-convert it (it could raise an FP exception on
 * the other path), so no loop calling exp or log vectorises.  The flag only
 * concerns FP exception flags, which nothing here reads: every operation
 * still rounds as IEEE says, the variants agree bit for bit with each other
 * and with the scalar primitives compiled without it (tested).
 */
#ifndef CE_VARIANT
#error "define CE_VARIANT before including crossent_rows_impl.h"
#endif

#include "crossent_math.h"
#include "crossent_rows_table.h"

#define CE_PASTE2_(a, b) a##b
#define CE_PASTE2(a, b) CE_PASTE2_(a, b)
#define CE_PASTE3_(a, b, c) a##b##c
#define CE_PASTE3(a, b, c) CE_PASTE3_(a, b, c)
#define CE_PASTE5_(a, b, c, d, e) a##b##c##d##e
#define CE_PASTE5(a, b, c, d, e) CE_PASTE5_(a, b, c, d, e)
#define CE_STRINGIFY_(x) #x
#define CE_STRINGIFY(x) CE_STRINGIFY_(x)

/* ce_foo_f32 -> ce_foo_f32_avx2 */
#define CE_VARIANT_NAME(name) CE_PASTE3(name, _, CE_VARIANT)
/* In the typed template: CE_FN(ce_foo) -> ce_foo_f32_avx2, and
 * CE_MATH(exp) -> ce_math_exp_f32 (crossent_math.h). */
#define CE_FN(base) CE_PASTE5(base, _, CE_TS, _, CE_VARIANT)
#define CE_MATH(base) CE_PASTE3(ce_math_, base, CE_PASTE2(_, CE_TS))

/* For the loop bodies specialised by constant flags (has_y, has_w, ...):
 * inlining makes the flags constants, so each specialisation is branch-free
 * and vectorises, without writing the loop once per case. */
#if defined(__GNUC__)
#define CE_INLINE static inline __attribute__((always_inline))
#else
#define CE_INLINE static inline
#endif

/* Before a loop over the CE_LANES lanes whose body is small: GCC would
 * otherwise unroll it completely before the vectoriser runs and then fail
 * to vectorise the unrolled selects; kept as a loop, it becomes one vector
 * operation per register. */
#if defined(__GNUC__) && !defined(__clang__)
#define CE_NO_UNROLL _Pragma("GCC unroll 1")
#else
#define CE_NO_UNROLL
#endif

/* 16 lanes: one AVX-512 register of float32, two of float64 -- wide enough
 * for every variant, and fixed so that the summation order never depends on
 * the variant. */
#define CE_LANES 16

/* Short rows processed together, one per vector lane (crossent_rows_typed.h,
 * xent_index_group): two AVX2 or one AVX-512 register of float32. */
#define CE_ROW_GROUP 16

/* Transposition of square tiles between rows, for the row groups:
 * out[i][out_offset + r] = in[r][in_offset + i] for r, i < CE_TILE_F32 (8
 * floats) or CE_TILE_F64 (4 doubles), one 32-byte vector per row, in
 * register shuffles (GCC's generic vectors, single instructions with AVX).
 * Pure data movement, so the bits are those of the scalar copy.  Without
 * AVX (the SSE2 baseline, where the 32-byte shuffles split into pairs and
 * run 1.4x slower than the plain copy) or without GCC, the groups copy entry
 * by entry (CE_TILE_SHUFFLES 0). */
#define CE_TILE_F32 8
#define CE_TILE_F64 4

#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX__)
#define CE_TILE_SHUFFLES 1
/* Unaligned, and allowed to alias the rows' element type. */
typedef float ce_v8f __attribute__((vector_size(32), aligned(4), may_alias));
typedef int ce_v8i __attribute__((vector_size(32)));
typedef double ce_v4d __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long ce_v4l __attribute__((vector_size(32)));

CE_INLINE void CE_VARIANT_NAME(ce_transpose_tile_f32)(const float *const *in, ptrdiff_t in_offset,
                                                      float *const *out, ptrdiff_t out_offset)
{
    ce_v8f r[8], t[8], s[8];
    for (int i = 0; i < 8; i++)
        r[i] = *(const ce_v8f *)(in[i] + in_offset);
    /* Pairs of rows interleaved, then pairs of pairs, within 128-bit
     * halves; then the halves exchanged. */
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], (ce_v8i){0, 8, 1, 9, 4, 12, 5, 13});
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], (ce_v8i){2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int i = 0; i < 8; i += 4)
        for (int h = 0; h < 2; h++) {
            s[i + 2 * h] = __builtin_shuffle(t[i + h], t[i + h + 2],
                                             (ce_v8i){0, 1, 8, 9, 4, 5, 12, 13});
            s[i + 2 * h + 1] = __builtin_shuffle(t[i + h], t[i + h + 2],
                                                 (ce_v8i){2, 3, 10, 11, 6, 7, 14, 15});
        }
    for (int i = 0; i < 4; i++) {
        ce_v8f low = __builtin_shuffle(s[i], s[i + 4], (ce_v8i){0, 1, 2, 3, 8, 9, 10, 11});
        ce_v8f high = __builtin_shuffle(s[i], s[i + 4], (ce_v8i){4, 5, 6, 7, 12, 13, 14, 15});
        *(ce_v8f *)(out[i] + out_offset) = low;
        *(ce_v8f *)(out[i + 4] + out_offset) = high;
    }
}

CE_INLINE void CE_VARIANT_NAME(ce_transpose_tile_f64)(const double *const *in,
                                                      ptrdiff_t in_offset, double *const *out,
                                                      ptrdiff_t out_offset)
{
    ce_v4d r[4], t[4];
    for (int i = 0; i < 4; i++)
        r[i] = *(const ce_v4d *)(in[i] + in_offset);
    for (int i = 0; i < 4; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], (ce_v4l){0, 4, 2, 6});
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], (ce_v4l){1, 5, 3, 7});
    }
    for (int h = 0; h < 2; h++) {
        ce_v4d low = __builtin_shuffle(t[h], t[h + 2], (ce_v4l){0, 1, 4, 5});
        ce_v4d high = __builtin_shuffle(t[h], t[h + 2], (ce_v4l){2, 3, 6, 7});
        *(ce_v4d *)(out[h] + out_offset) = low;
        *(ce_v4d *)(out[h + 2] + out_offset) = high;
    }
}
#else
#define CE_TILE_SHUFFLES 0
#endif

/* The longest rows xent_index_group takes, without a gradient and with
 * one: the break-even against the row function, whose per-row cost is
 * amortised over longer rows.  The group's speed over the row function's,
 * AVX2, float32: with tiles, loss only 1.09x at 160 classes, 0.97x at 192;
 * with the gradient 1.05x at 128, 0.95x at 144; copying entry by entry (no
 * tiles), loss only 0.98x at 112, with the gradient 0.84x at 64
 * (docs/performance.md). */
#if CE_TILE_SHUFFLES
#define CE_GROUP_MAX_CLASSES 160
#define CE_GROUP_MAX_CLASSES_WITH_GRAD 128
#else
#define CE_GROUP_MAX_CLASSES 104
#define CE_GROUP_MAX_CLASSES_WITH_GRAD 48
#endif

/* What a group of softmax rows computes (crossent_rows_typed.h,
 * activation_group). */
enum { CE_GROUP_SOFTMAX, CE_GROUP_LOG_SOFTMAX, CE_GROUP_LOGSUMEXP };

/* Sum of the lanes by a fixed pairwise tree. */
static inline double CE_VARIANT_NAME(ce_lanes_total)(double *acc)
{
    for (int width = CE_LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++)
            acc[j] += acc[j + width];
    return acc[0];
}

/* ce_scan_targets_*: targets are read CE_SCAN_CHUNK at a time by a
 * branch-free loop (vectorised whole); only a chunk holding a bad target is
 * read again, entry by entry, for its position. */
#define CE_SCAN_CHUNK 1024

CE_INLINE int CE_VARIANT_NAME(target_is_bad)(int64_t t, ptrdiff_t n_classes,
                                             ptrdiff_t ignore_index)
{
    return (t < 0 || t >= n_classes) && t != ignore_index;
}

CE_INLINE ptrdiff_t CE_VARIANT_NAME(scan_targets)(const int32_t *narrow, const int64_t *wide,
                                                  ptrdiff_t n, ptrdiff_t n_classes,
                                                  ptrdiff_t ignore_index, ptrdiff_t *kept)
{
    ptrdiff_t total = 0;
    for (ptrdiff_t start = 0; start < n; start += CE_SCAN_CHUNK) {
        ptrdiff_t end = n - start < CE_SCAN_CHUNK ? n : start + CE_SCAN_CHUNK;
        int64_t bad = 0, count = 0;
        for (ptrdiff_t i = start; i < end; i++) {
            int64_t t = wide ? wide[i] : narrow[i];
            int64_t keep = t != ignore_index;
            bad |= keep & ((t < 0) | (t >= n_classes));
            count += keep;
        }
        if (bad)
            for (ptrdiff_t i = start; i < end; i++)
                if (CE_VARIANT_NAME(target_is_bad)(wide ? wide[i] : narrow[i], n_classes,
                                                   ignore_index))
                    return i;
        total += count;
    }
    *kept = total;
    return -1;
}

static ptrdiff_t CE_VARIANT_NAME(ce_scan_targets_i32)(const int32_t *target, ptrdiff_t n,
                                                      ptrdiff_t n_classes,
                                                      ptrdiff_t ignore_index, ptrdiff_t *kept)
{
    return CE_VARIANT_NAME(scan_targets)(target, NULL, n, n_classes, ignore_index, kept);
}

static ptrdiff_t CE_VARIANT_NAME(ce_scan_targets_i64)(const int64_t *target, ptrdiff_t n,
                                                      ptrdiff_t n_classes,
                                                      ptrdiff_t ignore_index, ptrdiff_t *kept)
{
    return CE_VARIANT_NAME(scan_targets)(NULL, target, n, n_classes, ignore_index, kept);
}

#define CE_REAL float
#define CE_TS f32
#define CE_TILE CE_TILE_F32
#define CE_EXP_MODERATE CE_EXP_MODERATE_F32
#include "crossent_rows_typed.h"
#undef CE_REAL
#undef CE_TS
#undef CE_TILE
#undef CE_EXP_MODERATE

#define CE_REAL double
#define CE_TS f64
#define CE_TILE CE_TILE_F64
#define CE_EXP_MODERATE CE_EXP_MODERATE_F64
#include "crossent_rows_typed.h"
#undef CE_REAL
#undef CE_TS
#undef CE_TILE
#undef CE_EXP_MODERATE

#define CE_TABLE_ENTRY(ret, name, params, args) .CE_ROWS_TYPED(name) = CE_FN(name),
#define CE_TABLE_UNTYPED_ENTRY(ret, name, params, args) .name = CE_VARIANT_NAME(name),

const struct ce_rows_table CE_PASTE2(ce_rows_table_, CE_VARIANT) = {
    .name = CE_STRINGIFY(CE_VARIANT),
#define CE_TS f32
    CE_ROWS_TYPED_FUNCTIONS(CE_TABLE_ENTRY)
    CE_ROWS_PRIMITIVE_BLOCKS(CE_TABLE_ENTRY)
#undef CE_TS
#define CE_TS f64
    CE_ROWS_TYPED_FUNCTIONS(CE_TABLE_ENTRY)
    CE_ROWS_PRIMITIVE_BLOCKS(CE_TABLE_ENTRY)
#undef CE_TS
    CE_ROWS_INDEX_FUNCTIONS(CE_TABLE_UNTYPED_ENTRY)
};
