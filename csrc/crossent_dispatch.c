/*
 * crossent_dispatch.c -- runtime choice of the SIMD variant, and the exported
 * names of crossent_rows.h, which jump through the chosen table.
 *
 * The choice is made once, by ce_simd_select() at import (or at the first
 * call, if nobody selected): the table pointer is written before any kernel
 * runs and only read afterwards, so threads need no synchronisation.
 */
#include <stddef.h>
#include <string.h>

#include "crossent_rows_table.h"

static const struct ce_rows_table *ce_active_table = NULL;

#ifdef CE_HAVE_X86_VARIANTS
static int ce_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* __builtin_cpu_supports also checks that the OS saves the ZMM state. */
static int ce_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
           && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
           && ce_cpu_has_avx2();
}
#endif

const struct ce_rows_table *ce_simd_table(const char *variant)
{
    int best = variant == NULL || variant[0] == '\0';
#ifdef CE_HAVE_X86_VARIANTS
    if ((best || strcmp(variant, "avx512") == 0) && ce_cpu_has_avx512())
        return &ce_rows_table_avx512;
    if ((best || strcmp(variant, "avx2") == 0) && ce_cpu_has_avx2())
        return &ce_rows_table_avx2;
#endif
    if (best || strcmp(variant, "baseline") == 0)
        return &ce_rows_table_baseline;
    return NULL;
}

int ce_simd_select(const char *variant)
{
    const struct ce_rows_table *table = ce_simd_table(variant);
    if (table == NULL)
        return -1;
    ce_active_table = table;
    return 0;
}

const char *ce_simd_name(void)
{
    if (ce_active_table == NULL)
        ce_simd_select(NULL);
    return ce_active_table->name;
}

const char *ce_simd_available(void)
{
#ifdef CE_HAVE_X86_VARIANTS
    if (ce_cpu_has_avx512())
        return "baseline,avx2,avx512";
    if (ce_cpu_has_avx2())
        return "baseline,avx2";
#endif
    return "baseline";
}

static const struct ce_rows_table *ce_table(void)
{
    if (ce_active_table == NULL)
        ce_simd_select(NULL);
    return ce_active_table;
}

/* The jump of each exported name; CE_RETURN_<type> returns the callee's
 * value, or just calls it for void. */
#define CE_RETURN_void(call) call;
#define CE_RETURN_double(call) return call;
#define CE_RETURN_CE_REAL(call) return call;
#define CE_RETURN_ptrdiff_t(call) return call;
#define CE_EXPORT(ret, name, params, args) \
    ret CE_ROWS_TYPED(name) params { CE_RETURN_##ret(ce_table()->CE_ROWS_TYPED(name) args) }
#define CE_EXPORT_UNTYPED(ret, name, params, args) \
    ret name params { CE_RETURN_##ret(ce_table()->name args) }

#define CE_REAL float
#define CE_TS f32
CE_ROWS_TYPED_FUNCTIONS(CE_EXPORT)
#undef CE_REAL
#undef CE_TS
#define CE_REAL double
#define CE_TS f64
CE_ROWS_TYPED_FUNCTIONS(CE_EXPORT)
#undef CE_REAL
#undef CE_TS
CE_ROWS_INDEX_FUNCTIONS(CE_EXPORT_UNTYPED)
