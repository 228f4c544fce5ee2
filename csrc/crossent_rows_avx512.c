/* The AVX-512 variant (x86-64 only): the same body as the baseline, compiled
 * for AVX-512 F/BW/DQ/VL (Skylake-X and later, Zen 4) with 512-bit vectors
 * preferred.  No FMA contraction (-ffp-contract=off), so the variants round
 * alike. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512")
#pragma GCC optimize("no-trapping-math") /* see crossent_rows_impl.h */
#define CE_VARIANT avx512
#include "crossent_rows_impl.h"
#pragma GCC pop_options
#else
typedef int ce_rows_avx512_not_compiled_on_this_architecture;
#endif
