/*
 * crossent_rows_table.h -- internal: the table of row/block functions that
 * each SIMD variant fills and crossent_dispatch.c jumps through.
 *
 * The struct, every variant's table initialiser and the exported wrappers
 * in crossent_dispatch.c are generated from the function lists of
 * crossent_rows.h.
 *
 * Not part of the public contract (crossent_rows.h is): the tests reach the
 * variants through ce_simd_table() to compare them with each other.
 */
#ifndef CROSSENT_ROWS_TABLE_H
#define CROSSENT_ROWS_TABLE_H

#include "crossent_rows.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CE_TABLE_MEMBER(ret, name, params, args) ret(*CE_ROWS_TYPED(name)) params;
#define CE_TABLE_UNTYPED_MEMBER(ret, name, params, args) ret(*name) params;

struct ce_rows_table {
    const char *name;
#define CE_REAL float
#define CE_TS f32
    CE_ROWS_TYPED_FUNCTIONS(CE_TABLE_MEMBER)
    CE_ROWS_PRIMITIVE_BLOCKS(CE_TABLE_MEMBER)
#undef CE_REAL
#undef CE_TS
#define CE_REAL double
#define CE_TS f64
    CE_ROWS_TYPED_FUNCTIONS(CE_TABLE_MEMBER)
    CE_ROWS_PRIMITIVE_BLOCKS(CE_TABLE_MEMBER)
#undef CE_REAL
#undef CE_TS
    CE_ROWS_INDEX_FUNCTIONS(CE_TABLE_UNTYPED_MEMBER)
};

/* One table per variant compiled in (crossent_rows_<variant>.c).  The x86
 * variants need GCC's #pragma GCC target / optimize; other compilers and
 * architectures get the baseline only. */
extern const struct ce_rows_table ce_rows_table_baseline;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CE_HAVE_X86_VARIANTS 1
extern const struct ce_rows_table ce_rows_table_avx2;
extern const struct ce_rows_table ce_rows_table_avx512;
#endif

/* The table of a variant this CPU can run ("baseline", "avx2", "avx512"),
 * NULL/"" for the best; NULL if it is unknown or not supported here. */
const struct ce_rows_table *ce_simd_table(const char *variant);

#ifdef __cplusplus
}
#endif
#endif /* CROSSENT_ROWS_TABLE_H */
