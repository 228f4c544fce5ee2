/*
 * crossent_cbinding.c -- the CPython module crossent._c_backend: the kernels
 * of docs/kernels.md over the C loops of crossent_loops.c.
 *
 * Why a CPython extension and not ctypes: the kernels are also called on tiny
 * batches, where the binding is the whole cost.  METH_FASTCALL plus direct
 * reads of the ndarray struct cost well under a microsecond per call; ctypes
 * needs Python-level pointer/stride extraction and argument conversion that
 * cost several (measured in benchmarks/bench_call_overhead.py).
 *
 * The binding never copies: it reads each array's data pointer, shape and
 * strides (bytes -> elements).  It checks what would otherwise crash (types,
 * dimensions, shapes, dtypes, alignment, writability) and raises; everything
 * else (label ranges, formulas) is the facade's and the loops' business.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#include <numpy/arrayobject.h>
#include <stdlib.h>

#include "crossent_rows.h"
#include "crossent_loops.h"

#ifndef CE_BUILD_FLAGS
#define CE_BUILD_FLAGS ""
#endif
#ifndef CE_HAVE_OPENMP
#define CE_HAVE_OPENMP 0
#endif

/* Below this many elements, releasing and re-taking the GIL costs more than
 * other Python threads could gain. */
#define CE_GIL_RELEASE_ELEMENTS 32768

/* ---- argument parsing ------------------------------------------------------ */

typedef enum {
    CE_ARG_ELEMENTS2,     /* float array (R, K), same shape as the first one */
    CE_ARG_ROWS3,         /* float array (A, B, C), same shape as the first one */
    CE_ARG_PER_ROW2,      /* float array (A, B) */
    CE_ARG_TARGETS2,      /* int32 or int64 array (A, B) */
    CE_ARG_CLASS_WEIGHT,  /* None or C-contiguous float64 (C,) */
    CE_ARG_DOUBLE,
    CE_ARG_INDEX,
    CE_ARG_THREADS
} ce_arg_kind;

#define CE_OPTIONAL 1  /* None allowed */
#define CE_OUTPUT 2    /* must be writable */

typedef struct {
    const char *name;
    ce_arg_kind kind;
    int flags;
} ce_arg_spec;

#define CE_MAX_ARGS 12

typedef struct {
    const char *kernel;
    int type_num;               /* NPY_FLOAT or NPY_DOUBLE, from the first float array */
    npy_intp elements_shape[2]; /* set by the first CE_ARG_ELEMENTS2 */
    npy_intp rows_shape[3];     /* set by the first CE_ARG_ROWS3 */
    npy_intp per_row_shape[2];  /* set by rows_shape or the first per-row array */
    int have_elements, have_rows, have_per_row;
    ptrdiff_t work;             /* elements the kernel visits, to decide on the GIL */
    ce_array arr[CE_MAX_ARGS];  /* by position; data NULL when absent or not an array */
    double num[CE_MAX_ARGS];
    Py_ssize_t integer[CE_MAX_ARGS];
    const double *class_weight;
} ce_call;

static int ce_arg_error(PyObject *exc, const ce_call *call, const char *name, const char *expected,
                        PyObject *given)
{
    PyErr_Format(exc, "%s(): argument '%s' must be %s, got %R", call->kernel, name, expected, given);
    return -1;
}

static int ce_shape_error(const ce_call *call, const char *name, PyArrayObject *array, int ndim,
                          const npy_intp *expected)
{
    PyObject *want = PyTuple_New(ndim), *got = PyObject_GetAttrString((PyObject *)array, "shape");
    for (int d = 0; want != NULL && d < ndim; d++)
        PyTuple_SET_ITEM(want, d, PyLong_FromSsize_t(expected[d]));
    if (want != NULL && got != NULL)
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must have shape %R, got %R", call->kernel, name,
                     want, got);
    Py_XDECREF(want);
    Py_XDECREF(got);
    return -1;
}

/* Checks shape against `expected`, or records it there when *known is 0. */
static int ce_match_shape(ce_call *call, const char *name, PyArrayObject *array, int ndim, npy_intp *expected,
                          int *known)
{
    const npy_intp *shape = PyArray_DIMS(array);
    if (!*known) {
        for (int d = 0; d < ndim; d++)
            expected[d] = shape[d];
        *known = 1;
        return 0;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] != expected[d])
            return ce_shape_error(call, name, array, ndim, expected);
    return 0;
}

static int ce_match_float_type(ce_call *call, const char *name, PyArrayObject *array)
{
    int type_num = PyArray_TYPE(array);
    if (type_num != NPY_FLOAT && type_num != NPY_DOUBLE)
        return ce_arg_error(PyExc_TypeError, call, name, "a float32 or float64 array",
                            (PyObject *)PyArray_DESCR(array));
    if (call->type_num == NPY_NOTYPE)
        call->type_num = type_num;
    else if (type_num != call->type_num)
        return ce_arg_error(PyExc_TypeError, call, name,
                            call->type_num == NPY_FLOAT ? "float32 like the first array"
                                                        : "float64 like the first array",
                            (PyObject *)PyArray_DESCR(array));
    return 0;
}

/* Fills `out` with the array's data pointer, shape and element strides. */
static int ce_view_array(ce_call *call, const char *name, PyArrayObject *array, int flags, ce_array *out)
{
    int ndim = PyArray_NDIM(array);
    npy_intp itemsize = PyArray_ITEMSIZE(array);
    if (!PyArray_ISNOTSWAPPED(array) || !PyArray_ISALIGNED(array))
        return ce_arg_error(PyExc_ValueError, call, name, "an aligned array in native byte order",
                            (PyObject *)PyArray_DESCR(array));
    if ((flags & CE_OUTPUT) && !PyArray_ISWRITEABLE(array)) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be a writable array", call->kernel, name);
        return -1;
    }
    out->data = PyArray_DATA(array);
    out->ndim = ndim;
    out->itemsize = (int)itemsize;
    for (int d = 0; d < ndim; d++) {
        npy_intp stride = PyArray_STRIDE(array, d);
        /* every operand's itemsize is 4 or 8: constant divisors compile to
         * shifts and masks (this runs 10+ times per call) */
        npy_intp elements = itemsize == 4 ? stride / 4 : stride / 8;
        if (elements * itemsize != stride) {
            PyErr_Format(PyExc_ValueError, "%s(): argument '%s' has stride %zd, not a multiple of its itemsize %zd",
                         call->kernel, name, (Py_ssize_t)stride, (Py_ssize_t)itemsize);
            return -1;
        }
        out->shape[d] = PyArray_DIM(array, d);
        out->strides[d] = elements;
    }
    return 0;
}

static int ce_parse_array(ce_call *call, const ce_arg_spec *spec, PyObject *obj, ce_array *out)
{
    static const int ndims[] = {[CE_ARG_ELEMENTS2] = 2, [CE_ARG_ROWS3] = 3, [CE_ARG_PER_ROW2] = 2,
                                [CE_ARG_TARGETS2] = 2};
    int ndim = ndims[spec->kind];
    PyArrayObject *array = (PyArrayObject *)obj;
    if (obj == Py_None && (spec->flags & CE_OPTIONAL))
        return 0;
    if (!PyArray_Check(obj))
        return ce_arg_error(PyExc_TypeError, call, spec->name,
                            spec->flags & CE_OPTIONAL ? "a numpy.ndarray or None" : "a numpy.ndarray", obj);
    if (PyArray_NDIM(array) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be %d-D, got %d-D", call->kernel, spec->name, ndim,
                     PyArray_NDIM(array));
        return -1;
    }
    if (spec->kind == CE_ARG_TARGETS2) {
        if (PyArray_TYPE(array) != NPY_INT32 && PyArray_TYPE(array) != NPY_INT64)
            return ce_arg_error(PyExc_TypeError, call, spec->name, "an int32 or int64 array",
                                (PyObject *)PyArray_DESCR(array));
    } else if (ce_match_float_type(call, spec->name, array) < 0) {
        return -1;
    }
    switch (spec->kind) {
    case CE_ARG_ELEMENTS2:
        if (ce_match_shape(call, spec->name, array, 2, call->elements_shape, &call->have_elements) < 0)
            return -1;
        break;
    case CE_ARG_ROWS3:
        if (ce_match_shape(call, spec->name, array, 3, call->rows_shape, &call->have_rows) < 0)
            return -1;
        if (!call->have_per_row) {
            call->per_row_shape[0] = call->rows_shape[0];
            call->per_row_shape[1] = call->rows_shape[1];
            call->have_per_row = 1;
        }
        break;
    default:
        if (ce_match_shape(call, spec->name, array, 2, call->per_row_shape, &call->have_per_row) < 0)
            return -1;
    }
    if (call->work == 0)
        call->work = (ptrdiff_t)PyArray_SIZE(array);
    return ce_view_array(call, spec->name, array, spec->flags, out);
}

static int ce_parse_class_weight(ce_call *call, const ce_arg_spec *spec, PyObject *obj)
{
    PyArrayObject *array = (PyArrayObject *)obj;
    if (obj == Py_None)
        return 0;
    if (!PyArray_Check(obj) || PyArray_TYPE(array) != NPY_DOUBLE || PyArray_NDIM(array) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(array) || !PyArray_ISNOTSWAPPED(array) || !PyArray_ISALIGNED(array))
        return ce_arg_error(PyExc_TypeError, call, spec->name, "None or a C-contiguous 1-D float64 array", obj);
    if (call->have_rows && PyArray_DIM(array, 0) != call->rows_shape[2])
        return ce_shape_error(call, spec->name, array, 1, &call->rows_shape[2]);
    call->class_weight = (const double *)PyArray_DATA(array);
    return 0;
}

static int ce_parse_number(ce_call *call, const ce_arg_spec *spec, PyObject *obj, int position)
{
    if (spec->kind == CE_ARG_DOUBLE) {
        call->num[position] = PyFloat_AsDouble(obj);
        if (call->num[position] == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return ce_arg_error(PyExc_TypeError, call, spec->name, "a float", obj);
        }
        return 0;
    }
    if (!PyIndex_Check(obj))
        return ce_arg_error(PyExc_TypeError, call, spec->name, "an int", obj);
    call->integer[position] = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (call->integer[position] == -1 && PyErr_Occurred())
        return -1;
    if (spec->kind == CE_ARG_THREADS && (call->integer[position] < 1 || call->integer[position] > INT_MAX))
        return ce_arg_error(PyExc_ValueError, call, spec->name, "an int >= 1", obj);
    return 0;
}

/* Parses positional args against spec; on failure sets a Python error. */
static int ce_parse_call(ce_call *call, const char *kernel, const ce_arg_spec *spec, int n_spec,
                         PyObject *const *args, Py_ssize_t nargs)
{
    call->kernel = kernel;
    call->type_num = NPY_NOTYPE;
    call->have_elements = call->have_rows = call->have_per_row = 0;
    call->work = 0;
    call->class_weight = NULL;
    if (nargs != n_spec) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d positional arguments but %zd were given", kernel, n_spec, nargs);
        return -1;
    }
    for (int i = 0; i < n_spec; i++) {
        int status;
        call->arr[i].data = NULL;
        switch (spec[i].kind) {
        case CE_ARG_CLASS_WEIGHT:
            status = ce_parse_class_weight(call, &spec[i], args[i]);
            break;
        case CE_ARG_DOUBLE:
        case CE_ARG_INDEX:
        case CE_ARG_THREADS:
            status = ce_parse_number(call, &spec[i], args[i], i);
            break;
        default:
            status = ce_parse_array(call, &spec[i], args[i], &call->arr[i]);
        }
        if (status < 0)
            return -1;
    }
    return 0;
}

#define CE_N_SPEC(spec) ((int)(sizeof(spec) / sizeof((spec)[0])))
#define CE_PARSE(call, name, spec) ce_parse_call(&(call), name, spec, CE_N_SPEC(spec), args, nargs)

/* Runs `name`_f32 or `name`_f64 on the parsed call, without the GIL when the
 * work is large enough, and sets `status`. */
#define CE_RUN_TYPED(call, status, name, ...)                                      \
    do {                                                                          \
        int ce_release_gil_ = (call).work >= CE_GIL_RELEASE_ELEMENTS;              \
        PyThreadState *ce_thread_state_ = ce_release_gil_ ? PyEval_SaveThread() : NULL; \
        if ((call).type_num == NPY_FLOAT)                                         \
            (status) = name##_f32(__VA_ARGS__);                                   \
        else                                                                      \
            (status) = name##_f64(__VA_ARGS__);                                   \
        if (ce_release_gil_)                                                      \
            PyEval_RestoreThread(ce_thread_state_);                               \
    } while (0)

static PyObject *ce_result_none(int status)
{
    if (status != CE_OK)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *ce_result_float(int status, double acc)
{
    if (status != CE_OK)
        return PyErr_NoMemory();
    return PyFloat_FromDouble(acc);
}

/* ---- kernels ------------------------------------------------------------- */

#define CE_A(i) (&call.arr[i])
#define CE_NT(i) ((int)call.integer[i])

static const ce_arg_spec ce_spec_activation2[] = {
    {"x2", CE_ARG_ELEMENTS2, 0}, {"out2", CE_ARG_ELEMENTS2, CE_OUTPUT}, {"n_threads", CE_ARG_THREADS, 0}};
static const ce_arg_spec ce_spec_activation3[] = {
    {"x3", CE_ARG_ROWS3, 0}, {"out3", CE_ARG_ROWS3, CE_OUTPUT}, {"n_threads", CE_ARG_THREADS, 0}};
static const ce_arg_spec ce_spec_logsumexp[] = {
    {"x3", CE_ARG_ROWS3, 0}, {"out2", CE_ARG_PER_ROW2, CE_OUTPUT}, {"n_threads", CE_ARG_THREADS, 0}};

#define CE_DEFINE_ACTIVATION(kernel, spec)                                                       \
    static PyObject *ce_py_##kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs)     \
    {                                                                                           \
        ce_call call;                                                                           \
        int status;                                                                             \
        (void)self;                                                                             \
        if (CE_PARSE(call, #kernel, spec) < 0)                                                  \
            return NULL;                                                                        \
        CE_RUN_TYPED(call, status, ce_loop_##kernel, CE_A(0), CE_A(1), CE_NT(2));                \
        return ce_result_none(status);                                                          \
    }

CE_DEFINE_ACTIVATION(sigmoid, ce_spec_activation2)
CE_DEFINE_ACTIVATION(log_sigmoid, ce_spec_activation2)
CE_DEFINE_ACTIVATION(softmax, ce_spec_activation3)
CE_DEFINE_ACTIVATION(log_softmax, ce_spec_activation3)
CE_DEFINE_ACTIVATION(logsumexp, ce_spec_logsumexp)

/* bce and mse share their operands. */
static const ce_arg_spec ce_spec_pointwise_loss[] = {
    {"x2", CE_ARG_ELEMENTS2, 0},
    {"t2", CE_ARG_ELEMENTS2, 0},
    {"weight2", CE_ARG_ELEMENTS2, CE_OPTIONAL},
    {"sample_weight2", CE_ARG_ELEMENTS2, CE_OPTIONAL},
    {"losses_out2", CE_ARG_ELEMENTS2, CE_OPTIONAL | CE_OUTPUT},
    {"grad_out2", CE_ARG_ELEMENTS2, CE_OPTIONAL | CE_OUTPUT},
    {"grad_scale", CE_ARG_DOUBLE, 0},
    {"n_threads", CE_ARG_THREADS, 0},
    {"acc", CE_ARG_DOUBLE, 0}};

#define CE_DEFINE_POINTWISE_LOSS(kernel)                                                         \
    static PyObject *ce_py_##kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs)     \
    {                                                                                           \
        ce_call call;                                                                           \
        int status;                                                                             \
        (void)self;                                                                             \
        if (CE_PARSE(call, #kernel, ce_spec_pointwise_loss) < 0)                                \
            return NULL;                                                                        \
        CE_RUN_TYPED(call, status, ce_loop_##kernel, CE_A(0), CE_A(1), CE_A(2), CE_A(3), CE_A(4), \
                     CE_A(5), call.num[6], CE_NT(7), &call.num[8]);                             \
        return ce_result_float(status, call.num[8]);                                            \
    }

CE_DEFINE_POINTWISE_LOSS(bce)
CE_DEFINE_POINTWISE_LOSS(mse)

static PyObject *ce_py_bce_with_logits(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const ce_arg_spec spec[] = {{"z2", CE_ARG_ELEMENTS2, 0},
                                       {"y2", CE_ARG_ELEMENTS2, 0},
                                       {"weight2", CE_ARG_ELEMENTS2, CE_OPTIONAL},
                                       {"pos_weight2", CE_ARG_ELEMENTS2, CE_OPTIONAL},
                                       {"sample_weight2", CE_ARG_ELEMENTS2, CE_OPTIONAL},
                                       {"label_smoothing", CE_ARG_DOUBLE, 0},
                                       {"losses_out2", CE_ARG_ELEMENTS2, CE_OPTIONAL | CE_OUTPUT},
                                       {"grad_out2", CE_ARG_ELEMENTS2, CE_OPTIONAL | CE_OUTPUT},
                                       {"grad_scale", CE_ARG_DOUBLE, 0},
                                       {"n_threads", CE_ARG_THREADS, 0},
                                       {"acc", CE_ARG_DOUBLE, 0}};
    ce_call call;
    int status;
    (void)self;
    if (CE_PARSE(call, "bce_with_logits", spec) < 0)
        return NULL;
    CE_RUN_TYPED(call, status, ce_loop_bce_with_logits, CE_A(0), CE_A(1), CE_A(2), CE_A(3), CE_A(4),
                 call.num[5], CE_A(6), CE_A(7), call.num[8], CE_NT(9), &call.num[10]);
    return ce_result_float(status, call.num[10]);
}

/* softmax_xent_index and categorical_xent_index share their operands. */
static const ce_arg_spec ce_spec_index_loss[] = {
    {"z3", CE_ARG_ROWS3, 0},
    {"target2", CE_ARG_TARGETS2, 0},
    {"class_weight", CE_ARG_CLASS_WEIGHT, 0},
    {"sample_weight2", CE_ARG_PER_ROW2, CE_OPTIONAL},
    {"ignore_index", CE_ARG_INDEX, 0},
    {"label_smoothing", CE_ARG_DOUBLE, 0},
    {"losses_out2", CE_ARG_PER_ROW2, CE_OPTIONAL | CE_OUTPUT},
    {"grad_out3", CE_ARG_ROWS3, CE_OPTIONAL | CE_OUTPUT},
    {"grad_scale", CE_ARG_DOUBLE, 0},
    {"n_threads", CE_ARG_THREADS, 0},
    {"acc", CE_ARG_DOUBLE, 0}};

#define CE_DEFINE_INDEX_LOSS(kernel)                                                             \
    static PyObject *ce_py_##kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs)     \
    {                                                                                           \
        ce_call call;                                                                           \
        int status;                                                                             \
        (void)self;                                                                             \
        if (CE_PARSE(call, #kernel, ce_spec_index_loss) < 0)                                    \
            return NULL;                                                                        \
        CE_RUN_TYPED(call, status, ce_loop_##kernel, CE_A(0), CE_A(1), call.class_weight, CE_A(3), \
                     call.integer[4], call.num[5], CE_A(6), CE_A(7), call.num[8], CE_NT(9),     \
                     &call.num[10]);                                                            \
        return ce_result_float(status, call.num[10]);                                           \
    }

CE_DEFINE_INDEX_LOSS(softmax_xent_index)
CE_DEFINE_INDEX_LOSS(categorical_xent_index)

/* softmax_xent_soft and categorical_xent_soft share their operands. */
static const ce_arg_spec ce_spec_soft_loss[] = {
    {"z3", CE_ARG_ROWS3, 0},
    {"y3", CE_ARG_ROWS3, 0},
    {"class_weight", CE_ARG_CLASS_WEIGHT, 0},
    {"sample_weight2", CE_ARG_PER_ROW2, CE_OPTIONAL},
    {"label_smoothing", CE_ARG_DOUBLE, 0},
    {"losses_out2", CE_ARG_PER_ROW2, CE_OPTIONAL | CE_OUTPUT},
    {"grad_out3", CE_ARG_ROWS3, CE_OPTIONAL | CE_OUTPUT},
    {"grad_scale", CE_ARG_DOUBLE, 0},
    {"n_threads", CE_ARG_THREADS, 0},
    {"acc", CE_ARG_DOUBLE, 0}};

#define CE_DEFINE_SOFT_LOSS(kernel)                                                              \
    static PyObject *ce_py_##kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs)     \
    {                                                                                           \
        ce_call call;                                                                           \
        int status;                                                                             \
        (void)self;                                                                             \
        if (CE_PARSE(call, #kernel, ce_spec_soft_loss) < 0)                                     \
            return NULL;                                                                        \
        CE_RUN_TYPED(call, status, ce_loop_##kernel, CE_A(0), CE_A(1), call.class_weight, CE_A(3), \
                     call.num[4], CE_A(5), CE_A(6), call.num[7], CE_NT(8), &call.num[9]);       \
        return ce_result_float(status, call.num[9]);                                            \
    }

CE_DEFINE_SOFT_LOSS(softmax_xent_soft)
CE_DEFINE_SOFT_LOSS(categorical_xent_soft)

static PyObject *ce_py_nll_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const ce_arg_spec spec[] = {{"x3", CE_ARG_ROWS3, 0},
                                       {"target2", CE_ARG_TARGETS2, 0},
                                       {"class_weight", CE_ARG_CLASS_WEIGHT, 0},
                                       {"sample_weight2", CE_ARG_PER_ROW2, CE_OPTIONAL},
                                       {"ignore_index", CE_ARG_INDEX, 0},
                                       {"losses_out2", CE_ARG_PER_ROW2, CE_OPTIONAL | CE_OUTPUT},
                                       {"grad_out3", CE_ARG_ROWS3, CE_OPTIONAL | CE_OUTPUT},
                                       {"grad_scale", CE_ARG_DOUBLE, 0},
                                       {"n_threads", CE_ARG_THREADS, 0},
                                       {"acc", CE_ARG_DOUBLE, 0}};
    ce_call call;
    int status;
    (void)self;
    if (CE_PARSE(call, "nll_index", spec) < 0)
        return NULL;
    CE_RUN_TYPED(call, status, ce_loop_nll_index, CE_A(0), CE_A(1), call.class_weight, CE_A(3), call.integer[4],
                 CE_A(5), CE_A(6), call.num[7], CE_NT(8), &call.num[9]);
    return ce_result_float(status, call.num[9]);
}

static PyObject *ce_py_index_weight_sum(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const ce_arg_spec spec[] = {{"target2", CE_ARG_TARGETS2, 0},
                                       {"class_weight", CE_ARG_CLASS_WEIGHT, 0},
                                       {"sample_weight2", CE_ARG_PER_ROW2, CE_OPTIONAL},
                                       {"ignore_index", CE_ARG_INDEX, 0},
                                       {"n_threads", CE_ARG_THREADS, 0},
                                       {"acc", CE_ARG_DOUBLE, 0}};
    ce_call call;
    int status;
    (void)self;
    if (CE_PARSE(call, "index_weight_sum", spec) < 0)
        return NULL;
    if (call.type_num == NPY_NOTYPE)  /* no sample weight: no float operand, either variant */
        call.type_num = NPY_DOUBLE;
    CE_RUN_TYPED(call, status, ce_loop_index_weight_sum, CE_A(0), call.class_weight, CE_A(2), call.integer[3],
                 CE_NT(4), &call.num[5]);
    return ce_result_float(status, call.num[5]);
}

static PyObject *ce_py_first_bad_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const ce_arg_spec spec[] = {{"target2", CE_ARG_TARGETS2, 0},
                                       {"n_classes", CE_ARG_INDEX, 0},
                                       {"ignore_index", CE_ARG_INDEX, 0}};
    ce_call call;
    (void)self;
    if (CE_PARSE(call, "first_bad_index", spec) < 0)
        return NULL;
    return PyLong_FromSsize_t(ce_first_bad_index(CE_A(0), call.integer[1], call.integer[2]));
}

/* ---- module-level helpers --------------------------------------------------- */

static PyObject *ce_py_info(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return Py_BuildValue("{s:s, s:s, s:O, s:s, s:i, s:s, s:s}", "simd", ce_simd_name(), "simd_available",
                         ce_simd_available(), "openmp", CE_HAVE_OPENMP ? Py_True : Py_False, "build_flags",
                         CE_BUILD_FLAGS, "max_threads", ce_max_threads(), "binding", "cpython-fastcall",
                         "compiler",
#ifdef __VERSION__
                         __VERSION__
#else
                         "unknown"
#endif
    );
}

static PyObject *ce_py_set_simd(PyObject *self, PyObject *variant)
{
    const char *name;
    (void)self;
    if (!PyUnicode_Check(variant)) {
        PyErr_Format(PyExc_TypeError, "set_simd(): variant must be a str, got %R", variant);
        return NULL;
    }
    name = PyUnicode_AsUTF8(variant);
    if (name == NULL)
        return NULL;
    if (ce_simd_select(name) != 0) {
        PyErr_Format(PyExc_ValueError, "set_simd(): variant %R is not available on this CPU (available: %s)",
                     variant, ce_simd_available());
        return NULL;
    }
    Py_RETURN_NONE;
}

#define CE_KERNEL(name, signature)                                                          \
    {                                                                                       \
        #name, (PyCFunction)(void (*)(void))ce_py_##name, METH_FASTCALL, #name signature  \
            "\n--\n\nSee docs/kernels.md."                                                  \
    }

static PyMethodDef ce_methods[] = {
    CE_KERNEL(sigmoid, "(x2, out2, n_threads)"),
    CE_KERNEL(log_sigmoid, "(x2, out2, n_threads)"),
    CE_KERNEL(softmax, "(x3, out3, n_threads)"),
    CE_KERNEL(log_softmax, "(x3, out3, n_threads)"),
    CE_KERNEL(logsumexp, "(x3, out2, n_threads)"),
    CE_KERNEL(bce, "(p2, y2, weight2, sample_weight2, losses_out2, grad_out2, grad_scale, n_threads, acc)"),
    CE_KERNEL(bce_with_logits, "(z2, y2, weight2, pos_weight2, sample_weight2, label_smoothing, losses_out2, "
                               "grad_out2, grad_scale, n_threads, acc)"),
    CE_KERNEL(mse, "(x2, t2, weight2, sample_weight2, losses_out2, grad_out2, grad_scale, n_threads, acc)"),
    CE_KERNEL(softmax_xent_index, "(z3, target2, class_weight, sample_weight2, ignore_index, label_smoothing, "
                                  "losses_out2, grad_out3, grad_scale, n_threads, acc)"),
    CE_KERNEL(softmax_xent_soft, "(z3, y3, class_weight, sample_weight2, label_smoothing, losses_out2, "
                                 "grad_out3, grad_scale, n_threads, acc)"),
    CE_KERNEL(categorical_xent_index, "(p3, target2, class_weight, sample_weight2, ignore_index, "
                                      "label_smoothing, losses_out2, grad_out3, grad_scale, n_threads, acc)"),
    CE_KERNEL(categorical_xent_soft, "(p3, y3, class_weight, sample_weight2, label_smoothing, losses_out2, "
                                     "grad_out3, grad_scale, n_threads, acc)"),
    CE_KERNEL(nll_index, "(x3, target2, class_weight, sample_weight2, ignore_index, losses_out2, grad_out3, "
                         "grad_scale, n_threads, acc)"),
    CE_KERNEL(index_weight_sum, "(target2, class_weight, sample_weight2, ignore_index, n_threads, acc)"),
    CE_KERNEL(first_bad_index, "(target2, n_classes, ignore_index)"),
    {"info", ce_py_info, METH_NOARGS,
     "info()\n--\n\nThe SIMD variant in use and those available, OpenMP, build flags, threads, binding."},
    {"set_simd", ce_py_set_simd, METH_O,
     "set_simd(variant)\n--\n\nUse the row functions' 'baseline', 'avx2' or 'avx512' variant ('' = best); "
     "ValueError when the CPU lacks it."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef ce_module = {PyModuleDef_HEAD_INIT, "crossent._c_backend",
                                       "crossent kernels in C99 (+ OpenMP): the fallback when Cython is "
                                       "unavailable. Interface: docs/kernels.md.",
                                       -1, ce_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__c_backend(void)
{
    PyObject *module;
    import_array();
    module = PyModule_Create(&ce_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddStringConstant(module, "NAME", "c") < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
