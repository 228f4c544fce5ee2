/* The portable variant: whatever the build flags target (any x86-64, arm64,
 * ...).  Always compiled; the fallback when CROSSENT_SIMD=baseline. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math") /* see crossent_rows_impl.h */
#endif
#define CE_VARIANT baseline
#include "crossent_rows_impl.h"
