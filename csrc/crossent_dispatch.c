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

#define CE_EXPORT_VALUE(ret, name, params, args) \
    ret name params { return ce_table()->name args; }
#define CE_EXPORT_VOID(name, params, args) \
    void name params { ce_table()->name args; }

CE_ROWS_VALUE_FUNCTIONS(CE_EXPORT_VALUE)
CE_ROWS_VOID_FUNCTIONS(CE_EXPORT_VOID)
