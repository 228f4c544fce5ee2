/*
 * crossent_pybind.h -- Python arguments -> a ce_call, for both compiled
 * backends.  Each backend includes this file once (its statics are the
 * backend's own) and hands ce_py_add_kernels its runner: the parallel loop
 * over a call's units, Cython's prange in crossent._cython_backend and C's
 * OpenMP in crossent._c_backend.  Everything else a kernel call does lives
 * in crossent_blocks.c.
 *
 * The kernels' Python functions come from the table (crossent_kernels.h):
 * one METH_FASTCALL function per row, whose arguments are checked against
 * the row's signature.  The binding never copies: it reads each array's data
 * pointer, shape and byte strides.  It checks what would otherwise crash
 * (types, dimensions, shapes, dtypes, alignment, writability) and raises;
 * label ranges and formulas are the facade's and the kernels' business.
 *
 * The fast_* functions answer the facade's plain calls (C-contiguous arrays,
 * no weights, the default axis) in one compiled call, on the same operand
 * views the general path builds, so their bits are the general path's; they
 * return None for anything else, which the general path computes or rejects.
 */
#ifndef CROSSENT_PYBIND_H
#define CROSSENT_PYBIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef NPY_NO_DEPRECATED_API
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#endif
#include <numpy/arrayobject.h>
#include <math.h>
#include <string.h>

#include "crossent_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifndef CE_BUILD_FLAGS
#define CE_BUILD_FLAGS ""
#endif
#ifndef CE_HAVE_OPENMP
#define CE_HAVE_OPENMP 0
#endif

/* Runs a planned call: c->threads threads over its units, then
 * ce_call_finish.  Returns CE_OK or CE_ERR_NOMEM. */
typedef int (*ce_runner)(ce_call *c, double *acc);

static ce_runner ce_py_runner;
static const char *ce_py_backend_name = "";

/* ---- argument parsing ---------------------------------------------------------- */

typedef struct {
    const char *kernel;
    int type_num;               /* NPY_FLOAT or NPY_DOUBLE, from the first float array */
    npy_intp elements_shape[2]; /* set by the first elementwise operand */
    npy_intp rows_shape[3];     /* set by the first row operand */
    npy_intp per_row_shape[2];  /* set by rows_shape or the first per-row operand */
    int have_elements, have_rows, have_per_row;
    int n_threads;
    double acc;
} ce_py_parse;

static int ce_py_arg_error(PyObject *exc, const ce_py_parse *p, const char *name, const char *expected,
                           PyObject *given)
{
    PyErr_Format(exc, "%s(): argument '%s' must be %s, got %R", p->kernel, name, expected, given);
    return -1;
}

static int ce_py_shape_error(const ce_py_parse *p, const char *name, PyArrayObject *array, int ndim,
                             const npy_intp *expected)
{
    PyObject *want = PyTuple_New(ndim), *got = PyObject_GetAttrString((PyObject *)array, "shape");
    for (int d = 0; want != NULL && d < ndim; d++)
        PyTuple_SET_ITEM(want, d, PyLong_FromSsize_t(expected[d]));
    if (want != NULL && got != NULL)
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must have shape %R, got %R", p->kernel, name, want,
                     got);
    Py_XDECREF(want);
    Py_XDECREF(got);
    return -1;
}

/* Checks the shape against `expected`, or records it there when *known is 0. */
static int ce_py_match_shape(ce_py_parse *p, const char *name, PyArrayObject *array, int ndim,
                             npy_intp *expected, int *known)
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
            return ce_py_shape_error(p, name, array, ndim, expected);
    return 0;
}

static int ce_py_match_float_type(ce_py_parse *p, const char *name, PyArrayObject *array)
{
    int type_num = PyArray_TYPE(array);
    if (type_num != NPY_FLOAT && type_num != NPY_DOUBLE)
        return ce_py_arg_error(PyExc_TypeError, p, name, "a float32 or float64 array",
                               (PyObject *)PyArray_DESCR(array));
    if (p->type_num == NPY_NOTYPE)
        p->type_num = type_num;
    else if (type_num != p->type_num)
        return ce_py_arg_error(PyExc_TypeError, p, name,
                               p->type_num == NPY_FLOAT ? "float32 like the first array"
                                                        : "float64 like the first array",
                               (PyObject *)PyArray_DESCR(array));
    return 0;
}

/* float16, or ml_dtypes' bfloat16 (a NumPy user dtype: kind 'V', type char
 * 'E', 2 bytes), as an enum ce_half_kind. */
static int ce_py_half_kind(PyArrayObject *array)
{
    const PyArray_Descr *descr = PyArray_DESCR(array);
    if (PyArray_TYPE(array) == NPY_HALF)
        return CE_HALF_FLOAT16;
    if (descr->kind == 'V' && descr->type == 'E' && PyArray_ITEMSIZE(array) == 2)
        return CE_HALF_BFLOAT16;
    return CE_NOT_HALF;
}

static void ce_py_view(PyArrayObject *array, ce_operand *op)
{
    int ndim = PyArray_NDIM(array);
    op->data = PyArray_BYTES(array);
    op->itemsize = (int)PyArray_ITEMSIZE(array);
    for (int d = 0; d < ndim; d++) {
        op->shape[d] = PyArray_DIM(array, d);
        op->strides[d] = PyArray_STRIDE(array, d);
    }
}

static int ce_py_parse_array(ce_py_parse *p, const ce_arg *arg, PyObject *obj, ce_operand *op)
{
    static const int ndims[] = {[CE_ARG_ELEMENTS] = 2, [CE_ARG_ROWS] = 3, [CE_ARG_PER_ROW] = 2,
                                [CE_ARG_TARGETS] = 2};
    int ndim = ndims[arg->kind], half = CE_NOT_HALF;
    PyArrayObject *array = (PyArrayObject *)obj;
    if (obj == Py_None && arg->optional)
        return 0;
    if (!PyArray_Check(obj))
        return ce_py_arg_error(PyExc_TypeError, p, arg->name,
                               arg->optional ? "a numpy.ndarray or None" : "a numpy.ndarray", obj);
    if (PyArray_NDIM(array) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be %d-D, got %d-D", p->kernel, arg->name, ndim,
                     PyArray_NDIM(array));
        return -1;
    }
    if (arg->kind == CE_ARG_TARGETS) {
        if (PyArray_TYPE(array) != NPY_INT32 && PyArray_TYPE(array) != NPY_INT64)
            return ce_py_arg_error(PyExc_TypeError, p, arg->name, "an int32 or int64 array",
                                   (PyObject *)PyArray_DESCR(array));
    } else if (arg->slot == CE_X && !arg->output && (half = ce_py_half_kind(array)) != CE_NOT_HALF) {
        /* 2-byte predictions make a float32 call; X is every signature's first float array */
        if (p->type_num == NPY_NOTYPE)
            p->type_num = NPY_FLOAT;
        else if (p->type_num != NPY_FLOAT)
            return ce_py_arg_error(PyExc_TypeError, p, arg->name, "float64 like the first array",
                                   (PyObject *)PyArray_DESCR(array));
    } else if (ce_py_match_float_type(p, arg->name, array) < 0) {
        return -1;
    }
    if (arg->kind == CE_ARG_ELEMENTS) {
        if (ce_py_match_shape(p, arg->name, array, 2, p->elements_shape, &p->have_elements) < 0)
            return -1;
    } else if (arg->kind == CE_ARG_ROWS) {
        if (ce_py_match_shape(p, arg->name, array, 3, p->rows_shape, &p->have_rows) < 0)
            return -1;
        if (!p->have_per_row) {
            p->per_row_shape[0] = p->rows_shape[0];
            p->per_row_shape[1] = p->rows_shape[1];
            p->have_per_row = 1;
        }
    } else if (ce_py_match_shape(p, arg->name, array, 2, p->per_row_shape, &p->have_per_row) < 0) {
        return -1;
    }
    if (!PyArray_ISNOTSWAPPED(array) || !PyArray_ISALIGNED(array))
        return ce_py_arg_error(PyExc_ValueError, p, arg->name, "an aligned array in native byte order",
                               (PyObject *)PyArray_DESCR(array));
    if (arg->output && !PyArray_ISWRITEABLE(array)) {
        PyErr_Format(PyExc_ValueError, "%s(): argument '%s' must be a writable array", p->kernel, arg->name);
        return -1;
    }
    ce_py_view(array, op);
    op->half = half;
    return 0;
}

static int ce_py_parse_class_weight(ce_py_parse *p, const ce_arg *arg, PyObject *obj, ce_call *c)
{
    PyArrayObject *array = (PyArrayObject *)obj;
    if (obj == Py_None)
        return 0;
    if (!PyArray_Check(obj) || PyArray_TYPE(array) != NPY_DOUBLE || PyArray_NDIM(array) != 1
        || !PyArray_IS_C_CONTIGUOUS(array) || !PyArray_ISNOTSWAPPED(array) || !PyArray_ISALIGNED(array))
        return ce_py_arg_error(PyExc_TypeError, p, arg->name, "None or a C-contiguous 1-D float64 array", obj);
    if (p->have_rows && PyArray_DIM(array, 0) != p->rows_shape[2])
        return ce_py_shape_error(p, arg->name, array, 1, &p->rows_shape[2]);
    c->opt.class_weight = (const double *)PyArray_DATA(array);
    return 0;
}

static int ce_py_parse_number(ce_py_parse *p, const ce_arg *arg, PyObject *obj, ce_call *c)
{
    char *field = (char *)&c->opt + arg->slot;
    double value;
    Py_ssize_t integer;
    if (arg->kind == CE_ARG_DOUBLE || arg->kind == CE_ARG_ACC) {
        value = PyFloat_AsDouble(obj);
        if (value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return ce_py_arg_error(PyExc_TypeError, p, arg->name, "a float", obj);
        }
        if (arg->kind == CE_ARG_ACC)
            p->acc = value;
        else
            *(double *)field = value;
        return 0;
    }
    if (!PyIndex_Check(obj))
        return ce_py_arg_error(PyExc_TypeError, p, arg->name, "an int", obj);
    integer = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (integer == -1 && PyErr_Occurred())
        return -1;
    if (arg->kind == CE_ARG_THREADS) {
        if (integer < 1 || integer > INT_MAX)
            return ce_py_arg_error(PyExc_ValueError, p, arg->name, "an int >= 1", obj);
        p->n_threads = (int)integer;
    } else {
        *(ptrdiff_t *)field = integer;
    }
    return 0;
}

/* Parses the positional arguments of `kernel` into c; on failure sets a
 * Python error and returns -1. */
static int ce_py_parse_call(int kernel, PyObject *const *args, Py_ssize_t nargs, ce_call *c, ce_py_parse *p)
{
    int n_spec = 0;
    const ce_arg *spec = ce_kernel_args(kernel, &n_spec);
    memset(c, 0, sizeof(*c));
    memset(p, 0, sizeof(*p));
    c->kernel = kernel;
    p->kernel = ce_kernel_names[kernel];
    p->type_num = NPY_NOTYPE;
    p->n_threads = 1;
    if (nargs != n_spec) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d positional arguments but %zd were given", p->kernel, n_spec,
                     nargs);
        return -1;
    }
    for (int i = 0; i < n_spec; i++) {
        int status;
        switch (spec[i].kind) {
        case CE_ARG_CLASS_WEIGHT:
            status = ce_py_parse_class_weight(p, &spec[i], args[i], c);
            break;
        case CE_ARG_DOUBLE:
        case CE_ARG_INDEX:
        case CE_ARG_THREADS:
        case CE_ARG_ACC:
            status = ce_py_parse_number(p, &spec[i], args[i], c);
            break;
        default:
            status = ce_py_parse_array(p, &spec[i], args[i], &c->op[spec[i].slot]);
        }
        if (status < 0)
            return -1;
    }
    c->f32 = p->type_num == NPY_FLOAT;
    return 0;
}

/* ---- running ---------------------------------------------------------------------- */

/* Plans and runs c; the GIL is released only when the work pays for it. */
static int ce_py_execute(ce_call *c, int n_threads, double *acc)
{
    int status = ce_call_plan(c, n_threads);
    if (status != CE_OK)
        return status;
    if (c->work >= CE_PARALLEL_MIN_WORK) {
        Py_BEGIN_ALLOW_THREADS
        status = ce_py_runner(c, acc);
        Py_END_ALLOW_THREADS
    } else {
        status = ce_py_runner(c, acc);
    }
    return status;
}

static PyObject *ce_py_no_memory(void)
{
    PyErr_SetString(PyExc_MemoryError, "crossent: cannot allocate a staging buffer");
    return NULL;
}

static PyObject *ce_py_kernel(int kernel, PyObject *const *args, Py_ssize_t nargs)
{
    ce_call c;
    ce_py_parse p;
    double acc;
    if (ce_py_parse_call(kernel, args, nargs, &c, &p) < 0)
        return NULL;
    if (ce_kernel_over[kernel] == CE_SCAN) {
        ptrdiff_t kept;
        return PyLong_FromSsize_t(ce_first_bad_target(&c.op[CE_TARGET], c.opt.n_classes, c.opt.ignore_index, &kept));
    }
    acc = p.acc;
    if (ce_py_execute(&c, p.n_threads, &acc) != CE_OK)
        return ce_py_no_memory();
    if (ce_kernel_reduces(kernel))
        return PyFloat_FromDouble(acc);
    Py_RETURN_NONE;
}

#define CE_PY_KERNEL_FUNCTION(name, over, signature, ...)                                            \
    static PyObject *ce_py_kernel_##name(PyObject *self, PyObject *const *args, Py_ssize_t nargs) \
    {                                                                                           \
        (void)self;                                                                             \
        return ce_py_kernel(CE_K_##name, args, nargs);                                          \
    }
CE_KERNELS(CE_PY_KERNEL_FUNCTION)
#undef CE_PY_KERNEL_FUNCTION

/* ---- plain calls ---------------------------------------------------------------- */

static PyObject *ce_py_outputs;  /* crossent._outputs */

/* A new float32/float64 result: crossent._outputs.empty (a recycled buffer)
 * from its RECYCLE_MIN_BYTES on (read each time: the tests lower it), else a
 * fresh array. */
static PyArrayObject *ce_py_new_output(int ndim, const npy_intp *dims, int type_num)
{
    Py_ssize_t nbytes = type_num == NPY_FLOAT ? 4 : 8, threshold;
    PyObject *limit, *shape, *descr, *result;
    if (ce_py_outputs == NULL && (ce_py_outputs = PyImport_ImportModule("crossent._outputs")) == NULL)
        return NULL;
    if ((limit = PyObject_GetAttrString(ce_py_outputs, "RECYCLE_MIN_BYTES")) == NULL)
        return NULL;
    threshold = PyLong_AsSsize_t(limit);
    Py_DECREF(limit);
    if (threshold == -1 && PyErr_Occurred())
        return NULL;
    for (int d = 0; d < ndim; d++)
        nbytes *= dims[d];
    if (nbytes < threshold)
        return (PyArrayObject *)PyArray_EMPTY(ndim, (npy_intp *)dims, type_num, 0);
    shape = PyTuple_New(ndim);
    for (int d = 0; shape != NULL && d < ndim; d++)
        PyTuple_SET_ITEM(shape, d, PyLong_FromSsize_t(dims[d]));
    if (shape == NULL)
        return NULL;
    descr = (PyObject *)PyArray_DescrFromType(type_num);
    result = PyObject_CallMethod(ce_py_outputs, "empty", "OO", shape, descr);
    Py_DECREF(shape);
    Py_DECREF(descr);
    return (PyArrayObject *)result;
}

/* A loss total as the NumPy scalar of the data's dtype. */
static PyObject *ce_py_loss_scalar(double total, int type_num)
{
    float total32 = (float)total;
    PyArray_Descr *descr = PyArray_DescrFromType(type_num);
    PyObject *scalar = PyArray_Scalar(type_num == NPY_FLOAT ? (void *)&total32 : (void *)&total, descr, NULL);
    Py_DECREF(descr);
    return scalar;
}

static PyObject *ce_py_loss_result(double total, int type_num, PyArrayObject *grad)
{
    PyObject *loss = ce_py_loss_scalar(total, type_num);
    if (grad == NULL || loss == NULL)
        return loss;
    return Py_BuildValue("(NN)", loss, (PyObject *)grad);
}

static int ce_py_plain_array(PyObject *obj, int ndim)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    return PyArray_CheckExact(obj) && (ndim < 0 || PyArray_NDIM(a) == ndim) && PyArray_IS_C_CONTIGUOUS(a)
           && PyArray_ISALIGNED(a) && PyArray_ISNOTSWAPPED(a);
}

static int ce_py_float_type(PyObject *obj)
{
    int type_num = PyArray_TYPE((PyArrayObject *)obj);
    return type_num == NPY_FLOAT || type_num == NPY_DOUBLE ? type_num : NPY_NOTYPE;
}

/* The C-contiguous array as (1, rows, cols), or (1, rows) when cols is 0:
 * the views the general path folds a plain call's operands to. */
static void ce_py_view_rows(PyArrayObject *a, ptrdiff_t rows, ptrdiff_t cols, ce_operand *op)
{
    ptrdiff_t itemsize = PyArray_ITEMSIZE(a);
    memset(op, 0, sizeof(*op));
    op->data = PyArray_BYTES(a);
    op->itemsize = (int)itemsize;
    op->shape[0] = 1;
    op->shape[1] = rows;
    op->strides[1] = (cols ? cols : 1) * itemsize;
    if (cols) {
        op->shape[2] = cols;
        op->strides[2] = itemsize;
    }
}

static int ce_py_threads_arg(PyObject *obj, int *n_threads)
{
    Py_ssize_t n = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return -1;
    *n_threads = n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
    return 0;
}

/* Class weights the kernels take as they are: None, or a C-contiguous
 * float64 vector of length n_classes.  0: something else. */
static int ce_py_kernel_class_weight(PyObject *obj, ptrdiff_t n_classes, const double **data)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    *data = NULL;
    if (obj == Py_None)
        return 1;
    if (!ce_py_plain_array(obj, 1) || PyArray_TYPE(a) != NPY_DOUBLE || PyArray_DIM(a, 0) != n_classes)
        return 0;
    *data = (const double *)PyArray_DATA(a);
    return 1;
}

/* Sample weights the kernels take as they are: None, or a C-contiguous
 * vector of the predictions' dtype and length n, viewed as (1, n).  0:
 * something else. */
static int ce_py_kernel_sample_weight(PyObject *obj, int type_num, ptrdiff_t n, ce_operand *op)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    memset(op, 0, sizeof(*op));
    if (obj == Py_None)
        return 1;
    if (!ce_py_plain_array(obj, 1) || PyArray_TYPE(a) != type_num || PyArray_DIM(a, 0) != n)
        return 0;
    ce_py_view_rows(a, n, 0, op);
    return 1;
}

/* A C-contiguous array as (rows, cols), cols its last axis; NULL: absent.
 * pos_weight (cols,) is the same view with a zero row stride. */
static void ce_py_view_matrix(PyObject *obj, ptrdiff_t rows, ptrdiff_t cols, int broadcast_rows,
                              ce_operand *op)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    ptrdiff_t itemsize;
    memset(op, 0, sizeof(*op));
    if (obj == NULL || obj == Py_None)
        return;
    itemsize = PyArray_ITEMSIZE(a);
    op->data = PyArray_BYTES(a);
    op->itemsize = (int)itemsize;
    op->shape[0] = rows;
    op->shape[1] = cols;
    op->strides[0] = broadcast_rows ? 0 : cols * itemsize;
    op->strides[1] = itemsize;
}

static int ce_py_same_array_kind(PyObject *obj, PyArrayObject *like)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    return ce_py_plain_array(obj, -1) && PyArray_TYPE(a) == PyArray_TYPE(like)
           && PyArray_NDIM(a) == PyArray_NDIM(like)
           && PyArray_CompareLists(PyArray_DIMS(a), PyArray_DIMS(like), PyArray_NDIM(like));
}

/* Probabilities in [0, 1] (NaN allowed): what the general path accepts.
 * One branch-free pass the vectoriser takes whole. */
static int ce_py_probabilities(PyArrayObject *p, ptrdiff_t size)
{
    int bad = 0;
    if (PyArray_TYPE(p) == NPY_FLOAT) {
        const float *v = (const float *)PyArray_DATA(p);
        for (ptrdiff_t i = 0; i < size; i++)
            bad |= (v[i] < 0) | (v[i] > 1);
    } else {
        const double *v = (const double *)PyArray_DATA(p);
        for (ptrdiff_t i = 0; i < size; i++)
            bad |= (v[i] < 0) | (v[i] > 1);
    }
    return !bad;
}

static int ce_py_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs == expected)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional arguments", name, expected);
    return -1;
}

/* The kernel named by `name` (a str), or -1 with ValueError. */
static int ce_py_kernel_id(PyObject *name, const char *caller)
{
    const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    for (int k = 0; text != NULL && k < CE_N_KERNELS; k++)
        if (strcmp(text, ce_kernel_names[k]) == 0)
            return k;
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%s(): no kernel %R", caller, name);
    return -1;
}

/* The float scalars of a fast call; -1 with a Python error. */
static int ce_py_doubles(PyObject *const *args, int n, double *values)
{
    for (int i = 0; i < n; i++)
        if ((values[i] = PyFloat_AsDouble(args[i])) == -1.0 && PyErr_Occurred())
            return -1;
    return 0;
}

/* mean, return_grad and n_threads, the last three arguments of a fast call. */
static int ce_py_call_flags(PyObject *const *args, int *mean, int *return_grad, int *n_threads)
{
    *mean = PyObject_IsTrue(args[0]);
    *return_grad = PyObject_IsTrue(args[1]);
    if (*mean < 0 || *return_grad < 0)
        return -1;
    return ce_py_threads_arg(args[2], n_threads);
}

/* The sum behind a weighted mean, run as the general path runs it. */
static int ce_py_weight_sum(int kernel, const ce_call *loss, const ce_operand *x, const ce_operand *w,
                            int n_threads, double *sum)
{
    ce_call c;
    memset(&c, 0, sizeof(c));
    c.kernel = kernel;
    c.f32 = loss->f32;
    c.opt = loss->opt;
    if (kernel == CE_K_index_weight_sum) {
        c.op[CE_TARGET] = loss->op[CE_TARGET];
        c.op[CE_SAMPLE_WEIGHT] = loss->op[CE_SAMPLE_WEIGHT];
    } else if (kernel == CE_K_sample_weight_sum) {
        c.op[CE_SAMPLE_WEIGHT] = *x;
    } else {
        c.op[CE_X] = *x;
        if (w != NULL)
            c.op[CE_WEIGHT] = *w;
    }
    *sum = 0.0;
    return ce_py_execute(&c, n_threads, sum);
}

/* A row loss's operands and options are in c; computes the mean's
 * denominator (when `mean`), runs it and returns loss or (loss, grad).
 * None when the denominator is 0: the general path applies the 0/0 rule. */
static PyObject *ce_py_run_row_loss(ce_call *c, PyArrayObject *z, int type_num, int mean, int return_grad,
                                    int n_threads, double denominator)
{
    PyArrayObject *grad = NULL;
    double total = 0.0;
    if (mean && denominator == 0)
        Py_RETURN_NONE;
    if (!mean)
        denominator = 1.0;
    if (return_grad) {
        grad = ce_py_new_output(2, PyArray_DIMS(z), type_num);
        if (grad == NULL)
            return NULL;
        ce_py_view_rows(grad, PyArray_DIM(grad, 0), PyArray_DIM(grad, 1), &c->op[CE_OUT]);
    }
    c->opt.grad_scale = 1.0 / denominator;
    if (ce_py_execute(c, n_threads, &total) != CE_OK) {
        Py_XDECREF(grad);
        return ce_py_no_memory();
    }
    return ce_py_loss_result(mean ? total / denominator : total, type_num, grad);
}

/* The (n, C) predictions of a row loss: C-contiguous float32/float64 with
 * n, C > 0 (categorical losses: probabilities). NPY_NOTYPE: something else. */
static int ce_py_row_predictions(int kernel, PyObject *z)
{
    int type_num;
    if (!ce_py_plain_array(z, 2) || (type_num = ce_py_float_type(z)) == NPY_NOTYPE
        || PyArray_DIM((PyArrayObject *)z, 0) == 0 || PyArray_DIM((PyArrayObject *)z, 1) == 0)
        return NPY_NOTYPE;
    if ((kernel == CE_K_categorical_xent_index || kernel == CE_K_categorical_xent_soft)
        && !ce_py_probabilities((PyArrayObject *)z, PyArray_SIZE((PyArrayObject *)z)))
        return NPY_NOTYPE;
    return type_num;
}

/* fast_index_loss(kernel, z, t, class_weight, sample_weight, ignore_index, label_smoothing,
 *                 mean, return_grad, n_threads): kernel softmax_xent_index,
 * categorical_xent_index or nll_index (which ignores label_smoothing). */
static PyObject *ce_py_fast_index_loss(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *z = args[1], *t = args[2];
    int kernel, type_num, label_type, mean, return_grad, n_threads;
    ce_call c;
    ptrdiff_t n, kept;
    double denominator = 0.0, label_smoothing;
    Py_ssize_t ignore_index;
    (void)self;
    if (ce_py_nargs("fast_index_loss", nargs, 10) < 0 || (kernel = ce_py_kernel_id(args[0], "fast_index_loss")) < 0)
        return NULL;
    if (kernel != CE_K_softmax_xent_index && kernel != CE_K_categorical_xent_index && kernel != CE_K_nll_index) {
        PyErr_Format(PyExc_ValueError, "fast_index_loss(): %R is not an index loss", args[0]);
        return NULL;
    }
    if ((ignore_index = PyNumber_AsSsize_t(args[5], PyExc_OverflowError)) == -1 && PyErr_Occurred())
        return NULL;
    if (ce_py_doubles(args + 6, 1, &label_smoothing) < 0 || ce_py_call_flags(args + 7, &mean, &return_grad, &n_threads) < 0)
        return NULL;
    if ((type_num = ce_py_row_predictions(kernel, z)) == NPY_NOTYPE || !ce_py_plain_array(t, 1)
        || !(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        Py_RETURN_NONE;
    label_type = PyArray_TYPE((PyArrayObject *)t);
    n = PyArray_DIM((PyArrayObject *)z, 0);
    if ((label_type != NPY_INT32 && label_type != NPY_INT64) || PyArray_DIM((PyArrayObject *)t, 0) != n)
        Py_RETURN_NONE;
    memset(&c, 0, sizeof(c));
    c.kernel = kernel;
    c.f32 = type_num == NPY_FLOAT;
    ce_py_view_rows((PyArrayObject *)z, n, PyArray_DIM((PyArrayObject *)z, 1), &c.op[CE_X]);
    ce_py_view_rows((PyArrayObject *)t, n, 0, &c.op[CE_TARGET]);
    if (!ce_py_kernel_class_weight(args[3], c.op[CE_X].shape[2], &c.opt.class_weight)
        || !ce_py_kernel_sample_weight(args[4], type_num, n, &c.op[CE_SAMPLE_WEIGHT]))
        Py_RETURN_NONE;
    if (ce_first_bad_target(&c.op[CE_TARGET], c.op[CE_X].shape[2], ignore_index, &kept) >= 0)
        Py_RETURN_NONE;
    c.opt.ignore_index = ignore_index;
    c.opt.label_smoothing = kernel == CE_K_nll_index ? 0.0 : label_smoothing;
    /* Without weights the weight sum is the count of rows kept, exact in float64. */
    if (mean && c.opt.class_weight == NULL && c.op[CE_SAMPLE_WEIGHT].data == NULL)
        denominator = (double)kept;
    else if (mean && ce_py_weight_sum(CE_K_index_weight_sum, &c, NULL, NULL, n_threads, &denominator) != CE_OK)
        return ce_py_no_memory();
    return ce_py_run_row_loss(&c, (PyArrayObject *)z, type_num, mean, return_grad, n_threads, denominator);
}

/* fast_soft_loss(kernel, z, y, class_weight, sample_weight, label_smoothing, mean, return_grad,
 *                n_threads): kernel softmax_xent_soft or categorical_xent_soft. */
static PyObject *ce_py_fast_soft_loss(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *z = args[1], *y = args[2];
    int kernel, type_num, mean, return_grad, n_threads;
    ce_call c;
    ptrdiff_t n;
    double denominator = 0.0, label_smoothing;
    (void)self;
    if (ce_py_nargs("fast_soft_loss", nargs, 9) < 0 || (kernel = ce_py_kernel_id(args[0], "fast_soft_loss")) < 0)
        return NULL;
    if (kernel != CE_K_softmax_xent_soft && kernel != CE_K_categorical_xent_soft) {
        PyErr_Format(PyExc_ValueError, "fast_soft_loss(): %R is not a soft-target loss", args[0]);
        return NULL;
    }
    if (ce_py_doubles(args + 5, 1, &label_smoothing) < 0 || ce_py_call_flags(args + 6, &mean, &return_grad, &n_threads) < 0)
        return NULL;
    if ((type_num = ce_py_row_predictions(kernel, z)) == NPY_NOTYPE || !ce_py_same_array_kind(y, (PyArrayObject *)z)
        || !(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        Py_RETURN_NONE;
    n = PyArray_DIM((PyArrayObject *)z, 0);
    memset(&c, 0, sizeof(c));
    c.kernel = kernel;
    c.f32 = type_num == NPY_FLOAT;
    ce_py_view_rows((PyArrayObject *)z, n, PyArray_DIM((PyArrayObject *)z, 1), &c.op[CE_X]);
    ce_py_view_rows((PyArrayObject *)y, n, PyArray_DIM((PyArrayObject *)z, 1), &c.op[CE_Y]);
    if (!ce_py_kernel_class_weight(args[3], c.op[CE_X].shape[2], &c.opt.class_weight)
        || !ce_py_kernel_sample_weight(args[4], type_num, n, &c.op[CE_SAMPLE_WEIGHT]))
        Py_RETURN_NONE;
    c.opt.label_smoothing = label_smoothing;
    if (mean && c.op[CE_SAMPLE_WEIGHT].data == NULL)
        denominator = (double)n;
    else if (mean && ce_py_weight_sum(CE_K_sample_weight_sum, &c, &c.op[CE_SAMPLE_WEIGHT], NULL, n_threads,
                                      &denominator) != CE_OK)
        return ce_py_no_memory();
    return ce_py_run_row_loss(&c, (PyArrayObject *)z, type_num, mean, return_grad, n_threads, denominator);
}

/* A new result as the facade returns it: a NumPy scalar for 0-d. */
static PyObject *ce_py_array_result(PyArrayObject *a)
{
    PyObject *scalar;
    if (PyArray_NDIM(a) != 0)
        return (PyObject *)a;
    scalar = PyArray_ToScalar(PyArray_DATA(a), a);
    Py_DECREF(a);
    return scalar;
}

/* fast_activation(name, z, n_threads): a plain sigmoid, log_sigmoid,
 * softmax, log_softmax or logsumexp (the last axis) of a C-contiguous
 * float32/float64 array of any shape. */
static PyObject *ce_py_fast_activation(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyArrayObject *za = (PyArrayObject *)args[1], *result;
    const char *name;
    int kernel = -1, type_num, ndim, n_threads;
    ptrdiff_t size, classes;
    ce_call c;
    double unused = 0.0;
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fast_activation() takes 3 positional arguments");
        return NULL;
    }
    if ((name = PyUnicode_AsUTF8(args[0])) == NULL || ce_py_threads_arg(args[2], &n_threads) < 0)
        return NULL;
    for (int k = 0; k < CE_N_KERNELS; k++)
        if (strcmp(name, ce_kernel_names[k]) == 0)
            kernel = k;
    if (kernel != CE_K_sigmoid && kernel != CE_K_log_sigmoid && kernel != CE_K_softmax
        && kernel != CE_K_log_softmax && kernel != CE_K_logsumexp) {
        PyErr_Format(PyExc_ValueError, "fast_activation: no activation %R", args[0]);
        return NULL;
    }
    if (!ce_py_plain_array(args[1], -1) || (type_num = ce_py_float_type(args[1])) == NPY_NOTYPE
        || (size = PyArray_SIZE(za)) == 0)
        Py_RETURN_NONE;
    ndim = PyArray_NDIM(za);
    memset(&c, 0, sizeof(c));
    c.kernel = kernel;
    c.f32 = type_num == NPY_FLOAT;
    c.opt.grad_scale = 1.0;
    if (ce_kernel_over[kernel] == CE_ELEMENTS) {
        if ((result = ce_py_new_output(ndim, PyArray_DIMS(za), type_num)) == NULL)
            return NULL;
        ce_py_view_rows(za, size, 0, &c.op[CE_X]);
        ce_py_view_rows(result, size, 0, &c.op[CE_OUT]);
    } else {
        if (ndim == 0)
            Py_RETURN_NONE;
        classes = PyArray_DIM(za, ndim - 1);
        if ((result = ce_py_new_output(ndim - (kernel == CE_K_logsumexp), PyArray_DIMS(za), type_num)) == NULL)
            return NULL;
        ce_py_view_rows(za, size / classes, classes, &c.op[CE_X]);
        if (kernel == CE_K_logsumexp)
            ce_py_view_rows(result, size / classes, 0, &c.op[CE_LOSSES]);
        else
            ce_py_view_rows(result, size / classes, classes, &c.op[CE_OUT]);
    }
    if (ce_py_execute(&c, n_threads, &unused) != CE_OK) {
        Py_DECREF(result);
        return ce_py_no_memory();
    }
    return ce_py_array_result(result);
}

/* What the mean of an elementwise loss divides by (the general path's
 * rules, _validate.elementwise_plan and kl_div's plan). */
enum ce_py_divisor {
    CE_DIVIDE_NOTHING,        /* reduction "sum" */
    CE_DIVIDE_SAMPLE_WEIGHT,  /* Σ sample_weight; the element count without it */
    CE_DIVIDE_WEIGHTS,        /* Σ sample_weight·weight (mse_loss, as PyTorch) */
    CE_DIVIDE_ROWS            /* the rows: kl_div's "batchmean" along the last axis */
};

/* fast_elementwise(kernel, x, y, weight, pos_weight, sample_weight, label_smoothing, alpha,
 *                  gamma, log_target, divisor, return_grad, n_threads)
 * An elementwise loss of C-contiguous arrays of one dtype and shape (pos_weight:
 * the last axis), divided as `divisor` says.  Each kernel reads the options it
 * takes and ignores the others. */
static PyObject *ce_py_fast_elementwise(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *x = args[1], *y = args[2], *weight = args[3], *pos_weight = args[4], *sample_weight = args[5];
    PyArrayObject *xa = (PyArrayObject *)x, *grad = NULL;
    int kernel, type_num, ndim, log_target, return_grad, n_threads;
    long divisor;
    ptrdiff_t size, cols;
    double options[3], total = 0.0, denominator = 1.0;
    ce_operand *sum_of = NULL, *times = NULL;
    ce_call c;
    (void)self;
    if (ce_py_nargs("fast_elementwise", nargs, 13) < 0 || (kernel = ce_py_kernel_id(args[0], "fast_elementwise")) < 0)
        return NULL;
    if (ce_kernel_over[kernel] != CE_ELEMENTS || !ce_kernel_reduces(kernel)) {
        PyErr_Format(PyExc_ValueError, "fast_elementwise(): %R is not an elementwise loss", args[0]);
        return NULL;
    }
    if (ce_py_doubles(args + 6, 3, options) < 0 || (log_target = PyObject_IsTrue(args[9])) < 0
        || ((divisor = PyLong_AsLong(args[10])) == -1 && PyErr_Occurred())
        || (return_grad = PyObject_IsTrue(args[11])) < 0 || ce_py_threads_arg(args[12], &n_threads) < 0)
        return NULL;
    if (!ce_py_plain_array(x, -1) || (type_num = ce_py_float_type(x)) == NPY_NOTYPE
        || !ce_py_same_array_kind(y, xa) || (size = PyArray_SIZE(xa)) == 0
        || !(options[0] >= 0.0 && options[0] <= 1.0) || !isfinite(options[1])
        || !(options[2] >= 0.0 && isfinite(options[2])))
        Py_RETURN_NONE;
    ndim = PyArray_NDIM(xa);
    cols = ndim ? PyArray_DIM(xa, ndim - 1) : 1;
    if ((weight != Py_None && !ce_py_same_array_kind(weight, xa))
        || (sample_weight != Py_None && !ce_py_same_array_kind(sample_weight, xa))
        || (pos_weight != Py_None
            && (!ce_py_plain_array(pos_weight, 1) || PyArray_TYPE((PyArrayObject *)pos_weight) != type_num
                || PyArray_DIM((PyArrayObject *)pos_weight, 0) != cols))
        || (divisor == CE_DIVIDE_ROWS && (ndim == 0 || sample_weight != Py_None))
        || (kernel == CE_K_bce && !ce_py_probabilities(xa, size))
        || (kernel == CE_K_focal && !ce_py_probabilities((PyArrayObject *)y, size)))
        Py_RETURN_NONE;
    memset(&c, 0, sizeof(c));
    c.kernel = kernel;
    c.f32 = type_num == NPY_FLOAT;
    c.opt.label_smoothing = options[0];
    c.opt.alpha = options[1];
    c.opt.gamma = options[2];
    c.opt.log_target = log_target;
    ce_py_view_matrix(x, size / cols, cols, 0, &c.op[CE_X]);
    ce_py_view_matrix(y, size / cols, cols, 0, &c.op[CE_Y]);
    ce_py_view_matrix(weight, size / cols, cols, 0, &c.op[CE_WEIGHT]);
    ce_py_view_matrix(pos_weight, size / cols, cols, 1, &c.op[CE_POS_WEIGHT]);
    ce_py_view_matrix(sample_weight, size / cols, cols, 0, &c.op[CE_SAMPLE_WEIGHT]);
    if (divisor == CE_DIVIDE_ROWS) {
        denominator = (double)(size / cols);
    } else if (divisor != CE_DIVIDE_NOTHING) {
        if (c.op[CE_SAMPLE_WEIGHT].data != NULL)
            sum_of = &c.op[CE_SAMPLE_WEIGHT];
        if (divisor == CE_DIVIDE_WEIGHTS && c.op[CE_WEIGHT].data != NULL)
            *(sum_of == NULL ? &sum_of : &times) = &c.op[CE_WEIGHT];
        denominator = (double)size;
        if (sum_of != NULL
            && ce_py_weight_sum(CE_K_elementwise_weight_sum, &c, sum_of, times, n_threads, &denominator) != CE_OK)
            return ce_py_no_memory();
        if (denominator == 0)  /* the general path applies the mean's 0/0 rule */
            Py_RETURN_NONE;
    }
    c.opt.grad_scale = 1.0 / denominator;
    if (return_grad) {
        if ((grad = ce_py_new_output(ndim, PyArray_DIMS(xa), type_num)) == NULL)
            return NULL;
        ce_py_view_matrix((PyObject *)grad, size / cols, cols, 0, &c.op[CE_OUT]);
    }
    if (ce_py_execute(&c, n_threads, &total) != CE_OK) {
        Py_XDECREF(grad);
        return ce_py_no_memory();
    }
    return ce_py_loss_result(total / denominator, type_num, grad);
}

/* ---- module-level helpers ---------------------------------------------------------- */

static PyObject *ce_py_info(PyObject *self, PyObject *unused)
{
    int max_threads = 1;
    (void)self, (void)unused;
#ifdef _OPENMP
    max_threads = omp_get_max_threads();
#endif
    return Py_BuildValue("{s:s, s:s, s:O, s:s, s:i, s:s, s:s, s:s}", "simd", ce_simd_name(), "simd_available",
                         ce_simd_available(), "openmp", CE_HAVE_OPENMP ? Py_True : Py_False, "build_flags",
                         CE_BUILD_FLAGS, "max_threads", max_threads, "binding", "cpython-fastcall", "loops",
                         ce_py_backend_name, "compiler",
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
    if ((name = PyUnicode_AsUTF8(variant)) == NULL)
        return NULL;
    if (ce_simd_select(name) != 0) {
        PyErr_Format(PyExc_ValueError, "set_simd(): variant %R is not available on this CPU (available: %s)",
                     variant, ce_simd_available());
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Sets of bins a float32 value may go to (by its index): consecutive values
 * of one exponent then add into different bins, not one chain of additions
 * through memory. */
#define CE_EXACT_BIN_SETS 4

/* The signed mantissa sums of n finite float32 values by biased exponent
 * (subnormals with exponent 1): x = +-M * 2**(E - 150), M < 2**24. */
static void ce_exact_bins_f32(const uint32_t *bits, npy_intp n, int64_t *bins)
{
    int64_t sets[CE_EXACT_BIN_SETS][256] = {{0}};
    for (npy_intp i = 0; i < n; i++) {
        uint32_t b = bits[i], e = (b >> 23) & 0xFF;
        int64_t m = (int64_t)((b & 0x7FFFFF) | (e != 0 ? 0x800000u : 0u));
        sets[i % CE_EXACT_BIN_SETS][e != 0 ? e : 1] += (b >> 31) ? -m : m;
    }
    for (int e = 0; e < 256; e++)
        for (int s = 0; s < CE_EXACT_BIN_SETS; s++)
            bins[e] += sets[s][e];
}

/* The same for float64, x = +-M * 2**(E - 1075), M < 2**53 split into its
 * high 27 and low 26 bits: high[E] and low[E]. */
static void ce_exact_bins_f64(const uint64_t *bits, npy_intp n, int64_t *high, int64_t *low)
{
    for (npy_intp i = 0; i < n; i++) {
        uint64_t b = bits[i], e = (b >> 52) & 0x7FF;
        uint64_t m = (b & ((UINT64_C(1) << 52) - 1)) | (e != 0 ? UINT64_C(1) << 52 : 0);
        int64_t h = (int64_t)(m >> 26), l = (int64_t)(m & ((UINT64_C(1) << 26) - 1));
        e = e != 0 ? e : 1;
        high[e] += (b >> 63) ? -h : h;
        low[e] += (b >> 63) ? -l : l;
    }
}

/* exact_bins(x): the exact sum of a contiguous 1-D float32 or float64 array
 * of finite values as integer sums by binary exponent, for
 * crossent/_exactsum.py: int64 (256,) of the float32 mantissas, or (2, 2048)
 * of the float64 mantissas' high and low parts.  Exact for up to 2**36
 * values (each sum stays below 2**63). */
static PyObject *ce_py_exact_bins(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyArrayObject *x, *bins;
    npy_intp n, dims[2] = {2, 2048};
    int f32;
    (void)self;
    if (nargs != 1 || !PyArray_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "exact_bins(): expected one ndarray");
        return NULL;
    }
    x = (PyArrayObject *)args[0];
    f32 = PyArray_TYPE(x) == NPY_FLOAT;
    if (PyArray_NDIM(x) != 1 || !PyArray_IS_C_CONTIGUOUS(x) || !PyArray_ISNOTSWAPPED(x)
        || (!f32 && PyArray_TYPE(x) != NPY_DOUBLE)) {
        PyErr_SetString(PyExc_ValueError, "exact_bins(): x must be a contiguous 1-D float32 or float64 array");
        return NULL;
    }
    n = PyArray_DIM(x, 0);
    if (n > ((npy_intp)1 << 36)) {
        PyErr_SetString(PyExc_ValueError, "exact_bins(): more than 2**36 values");
        return NULL;
    }
    if (f32)
        dims[0] = 256;
    bins = (PyArrayObject *)PyArray_ZEROS(f32 ? 1 : 2, dims, NPY_INT64, 0);
    if (bins == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (f32)
        ce_exact_bins_f32((const uint32_t *)PyArray_DATA(x), n, (int64_t *)PyArray_DATA(bins));
    else
        ce_exact_bins_f64((const uint64_t *)PyArray_DATA(x), n, (int64_t *)PyArray_DATA(bins),
                          (int64_t *)PyArray_DATA(bins) + 2048);
    Py_END_ALLOW_THREADS
    return (PyObject *)bins;
}

#define CE_PY_KERNEL_METHOD(name, over, signature, ...)                                              \
    {#name, (PyCFunction)(void (*)(void))ce_py_kernel_##name, METH_FASTCALL,                    \
     #name "(" signature ")\n\nThe kernel " #name " of docs/kernels.md ('?': may be None)."},
#define CE_PY_METHOD(name, doc) {#name, (PyCFunction)(void (*)(void))ce_py_##name, METH_FASTCALL, doc}

static PyMethodDef ce_py_methods[] = {
    CE_KERNELS(CE_PY_KERNEL_METHOD)
    CE_PY_METHOD(fast_index_loss,
                 "fast_index_loss(kernel, z, t, class_weight, sample_weight, ignore_index, label_smoothing, "
                 "mean, return_grad, n_threads)\n\nAn index-target row loss in one call, or None "
                 "(docs/kernels.md)."),
    CE_PY_METHOD(fast_soft_loss,
                 "fast_soft_loss(kernel, z, y, class_weight, sample_weight, label_smoothing, mean, "
                 "return_grad, n_threads)\n\nA soft-target row loss in one call, or None (docs/kernels.md)."),
    CE_PY_METHOD(fast_activation, "fast_activation(name, z, n_threads)\n\n"
                                  "A plain activation of z along its last axis, or None (docs/kernels.md)."),
    CE_PY_METHOD(fast_elementwise,
                 "fast_elementwise(kernel, x, y, weight, pos_weight, sample_weight, label_smoothing, alpha, "
                 "gamma, log_target, divisor, return_grad, n_threads)\n\nAn elementwise loss in one call, "
                 "or None (docs/kernels.md)."),
    CE_PY_METHOD(exact_bins, "exact_bins(x)\n\nThe exact sum of the finite values of a contiguous 1-D float32 "
                             "or float64 x, as int64 sums of their mantissas by exponent (crossent/_exactsum.py)."),
    {"info", ce_py_info, METH_NOARGS,
     "info()\n--\n\nThe SIMD variant in use and those available, OpenMP, build flags, threads, binding."},
    {"set_simd", ce_py_set_simd, METH_O,
     "set_simd(variant)\n--\n\nUse the row functions' 'baseline', 'avx2' or 'avx512' variant ('' = best); "
     "ValueError when the CPU lacks it."},
    {NULL, NULL, 0, NULL}};

/* KERNELS: {name: signature} of the table, for the tests that check the
 * reference and docs/kernels.md against it. */
static int ce_py_add_table(PyObject *dict)
{
    PyObject *table = PyDict_New();
    int status;
    for (int k = 0; table != NULL && k < CE_N_KERNELS; k++) {
        PyObject *signature = PyUnicode_FromString(ce_kernel_signatures[k]);
        if (signature == NULL || PyDict_SetItemString(table, ce_kernel_names[k], signature) < 0) {
            Py_XDECREF(signature);
            Py_CLEAR(table);
            break;
        }
        Py_DECREF(signature);
    }
    if (table == NULL)
        return -1;
    status = PyDict_SetItemString(dict, "KERNELS", table);
    Py_DECREF(table);
    return status;
}

/* Puts the kernels and helpers into the module's namespace `dict`, run by
 * `runner`; `loops` names how the runner threads ("cython-prange", ...).
 * -1 with ImportError when the kernel table is inconsistent. */
static int ce_py_add_kernels(PyObject *dict, ce_runner runner, const char *loops)
{
    const char *error = ce_kernel_table_error();
    if (error != NULL) {
        PyErr_Format(PyExc_ImportError, "crossent: the kernel table is inconsistent: %s", error);
        return -1;
    }
    ce_py_runner = runner;
    ce_py_backend_name = loops;
    if (ce_py_add_table(dict) < 0)
        return -1;
    for (PyMethodDef *def = ce_py_methods; def->ml_name != NULL; def++) {
        PyObject *function = PyCFunction_NewEx(def, NULL, PyDict_GetItemString(dict, "__name__"));
        if (function == NULL || PyDict_SetItemString(dict, def->ml_name, function) < 0) {
            Py_XDECREF(function);
            return -1;
        }
        Py_DECREF(function);
    }
    return 0;
}

#endif /* CROSSENT_PYBIND_H */
