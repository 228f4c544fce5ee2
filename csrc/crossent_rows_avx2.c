/* The AVX2 variant (x86-64 only): the same body as the baseline, compiled
 * for AVX2.  No FMA on purpose: the build has -ffp-contract=off and the
 * variants must round exactly like the baseline. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* System headers before the target switch, so that only our code is
 * compiled for AVX2. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2")
#pragma GCC optimize("no-trapping-math") /* see crossent_rows_impl.h */
#define CE_VARIANT avx2
#include "crossent_rows_impl.h"
#pragma GCC pop_options
#else
/* ISO C forbids an empty translation unit. */
typedef int ce_rows_avx2_not_compiled_on_this_architecture;
#endif
