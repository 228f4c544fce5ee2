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

/* The longest rows xent_index_group takes: without a gradient, and with one
 * (whose transposed write-out is scalar).  Beyond them the row function is
 * as fast or faster (measured on AVX2 against the row function: loss only,
 * 1.6x faster at 100 classes, 0.98x at 112; with the gradient, 1.24x at 48,
 * 0.84x at 64). */
#define CE_GROUP_MAX_CLASSES 104
#define CE_GROUP_MAX_CLASSES_WITH_GRAD 48

/* Sum of the lanes by a fixed pairwise tree. */
static inline double CE_VARIANT_NAME(ce_lanes_total)(double *acc)
{
    for (int width = CE_LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++)
            acc[j] += acc[j + width];
    return acc[0];
}

#define CE_REAL float
#define CE_TS f32
#define CE_EXP_MODERATE CE_EXP_MODERATE_F32
#include "crossent_rows_typed.h"
#undef CE_REAL
#undef CE_TS
#undef CE_EXP_MODERATE

#define CE_REAL double
#define CE_TS f64
#define CE_EXP_MODERATE CE_EXP_MODERATE_F64
#include "crossent_rows_typed.h"
#undef CE_REAL
#undef CE_TS
#undef CE_EXP_MODERATE

#define CE_TABLE_VALUE_ENTRY(ret, name, params, args) .name = CE_VARIANT_NAME(name),
#define CE_TABLE_VOID_ENTRY(name, params, args) .name = CE_VARIANT_NAME(name),

const struct ce_rows_table CE_PASTE2(ce_rows_table_, CE_VARIANT) = {
    .name = CE_STRINGIFY(CE_VARIANT),
    CE_ROWS_VALUE_FUNCTIONS(CE_TABLE_VALUE_ENTRY)
    CE_ROWS_VOID_FUNCTIONS(CE_TABLE_VOID_ENTRY)
    CE_ROWS_PRIMITIVE_BLOCKS(CE_TABLE_VOID_ENTRY)
};
