/*
 * crossent_cbinding.c -- the CPython module crossent._c_backend: the kernels
 * of the table (crossent_kernels.h) run on OpenMP threads.  The fallback
 * when Cython is not available: it builds with a C compiler and NumPy alone.
 *
 * Why a CPython extension and not ctypes: the kernels are also called on tiny
 * batches, where the binding is the whole cost.  METH_FASTCALL plus direct
 * reads of the ndarray struct cost well under a microsecond per call; ctypes
 * needs Python-level pointer/stride extraction and argument conversion that
 * cost several (benchmarks/bench_call_overhead.py).
 */
#include "crossent_pybind.h"

#include <stdlib.h>

/* The call's units on c->threads OpenMP threads.  Units are handed out a few
 * at a time (c->grab, dynamic): on a busy machine a thread whose core is
 * taken does less of the work instead of holding up the others.  Each unit's
 * sum goes to its own slot, so the bits do not depend on who computed it. */
static int ce_omp_run(ce_call *c, double *acc)
{
    double *unit_sums;
    int failed = 0, status;
    if (c->threads <= 1)
        return ce_call_run_serial(c, acc);
    unit_sums = (double *)malloc((size_t)c->n_units * sizeof(double));
    if (unit_sums == NULL)
        return ce_call_finish(c, NULL, 1, acc);
#ifdef _OPENMP
#pragma omp parallel num_threads(c->threads)
#endif
    {
        void *scratch = c->scratch_bytes > 0 ? malloc(c->scratch_bytes) : NULL;
        int ok = c->scratch_bytes == 0 || scratch != NULL;
        if (!ok) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, c->grab)
#endif
        for (ptrdiff_t u = 0; u < c->n_units; u++)
            if (ok)
                ce_call_unit(c, u, scratch, &unit_sums[u]);
        free(scratch);
    }
    status = ce_call_finish(c, unit_sums, failed, acc);
    free(unit_sums);
    return status;
}

static struct PyModuleDef ce_module = {PyModuleDef_HEAD_INIT, "crossent._c_backend",
                                       "crossent kernels in C99 (+ OpenMP): the fallback when Cython is "
                                       "unavailable. Interface: docs/kernels.md.",
                                       -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__c_backend(void)
{
    PyObject *module;
    import_array();
    module = PyModule_Create(&ce_module);
    if (module == NULL)
        return NULL;
    if (ce_py_add_kernels(PyModule_GetDict(module), ce_omp_run, "c-openmp") < 0
        || PyModule_AddStringConstant(module, "NAME", "c") < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
