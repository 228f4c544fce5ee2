# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython backend ("cython"): the kernels of the table
(csrc/crossent_kernels.h) run on Cython's prange threads.

Everything below "run unit u of a kernel call" is csrc/crossent_blocks.c,
and the Python arguments are bound to a call by csrc/crossent_pybind.h, both
shared with the C backend; what is this backend's own is the parallel loop
below.  A call's unit sums are added in unit order by ce_call_finish, so the
bits never depend on the thread count.
"""
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
cimport numpy as cnp

cnp.import_array()

cdef extern from "crossent_kernels.h" nogil:
    ctypedef struct ce_call:
        Py_ssize_t n_units
        Py_ssize_t grab
        size_t scratch_bytes
        int threads
    void ce_call_unit(const ce_call *c, Py_ssize_t u, void *scratch, double *unit_sum)
    int ce_call_finish(ce_call *c, const double *unit_sums, int failed, double *acc)
    int ce_call_run_serial(ce_call *c, double *acc)

cdef extern from "crossent_pybind.h":
    ctypedef int (*ce_runner)(ce_call *c, double *acc) noexcept
    int ce_py_add_kernels(dict namespace, ce_runner runner, const char *loops) except -1

NAME = "cython"


cdef int _run_prange(ce_call *c, double *acc) noexcept nogil:
    """The call's units on c.threads threads, a few at a time (c.grab,
    dynamic): on a busy machine a thread whose core is taken then does less
    of the work instead of holding up the call."""
    cdef double *unit_sums
    cdef void *scratch = NULL
    cdef int failed = 0, status
    cdef Py_ssize_t u
    if c.threads <= 1:
        return ce_call_run_serial(c, acc)
    unit_sums = <double *>malloc(c.n_units * sizeof(double))
    if unit_sums == NULL:
        return ce_call_finish(c, NULL, 1, acc)
    with parallel(num_threads=c.threads):
        scratch = malloc(c.scratch_bytes) if c.scratch_bytes else NULL
        for u in prange(c.n_units, schedule='dynamic', chunksize=c.grab):
            if c.scratch_bytes and scratch == NULL:
                failed += 1
            else:
                ce_call_unit(c, u, scratch, &unit_sums[u])
        free(scratch)
    status = ce_call_finish(c, unit_sums, failed != 0, acc)
    free(unit_sums)
    return status


ce_py_add_kernels(globals(), _run_prange, b"cython-prange")
