"""The benchmark cases, defined once.

Both timing engines read this module: ``crossent bench`` (``_bench.py``) and
the pytest-benchmark suite under ``benchmarks/``.  A *case* is one public
function at one size, dtype and memory layout; an *implementation* is a
crossent backend (``"numpy"`` is the reference every speed-up is measured
against) or a peer library (PyTorch, scikit-learn, JAX) when it is installed.

Losses are timed with their gradient (``return_grad=True``, and autograd for
the peers), because a training step needs both.  Every implementation's result
is checked against the NumPy reference evaluated in float64 on a contiguous
copy of the same inputs, so a fast but wrong kernel never passes as a speed-up.

Peers are imported only when an implementation of theirs is prepared, so
importing this module stays cheap.
"""
import dataclasses
import functools
import importlib
import importlib.util

import numpy as np

REFERENCE = "numpy"
PEERS = ("torch", "sklearn", "jax")

def _functions():
    from . import _api
    return _api.FUNCTIONS


# The public functions (crossent._api.FUNCTIONS): rows of classes, then
# functions of one element at a time.
ROW_FUNCTIONS = tuple(name for name, f in _functions().items() if f.over == "rows")
ELEMENTWISE_FUNCTIONS = tuple(name for name, f in _functions().items() if f.over == "elements")
FUNCTIONS = ROW_FUNCTIONS + ELEMENTWISE_FUNCTIONS
LOSSES = frozenset(name for name, f in _functions().items() if f.planner is not None)

# batch x classes: many short rows, the ImageNet shape, a vocabulary, a large
# vocabulary, and one tiny row whose time is all call overhead.
ROW_SHAPES = ((65536, 10), (4096, 1000), (256, 32000), (32, 128000), (1, 10))
ELEMENT_SHAPES = ((10,), (10**6,), (10**7,))
DTYPES = ("float32", "float64")
# "strided": every other element of a buffer twice as wide (rows and classes
# both non-contiguous), the commonest non-contiguous view in practice.
LAYOUTS = ("contiguous", "strided")


@dataclasses.dataclass(frozen=True)
class Case:
    function: str
    shape: tuple
    dtype: str
    layout: str

    @property
    def id(self):
        size = "x".join(str(n) for n in self.shape)
        return f"{self.function}[{size}-{self.dtype}-{self.layout}]"

    @property
    def has_grad(self):
        return self.function in LOSSES


def all_cases():
    """The full grid: every function x size x dtype x layout."""
    cases = []
    for function in FUNCTIONS:
        shapes = ROW_SHAPES if function in ROW_FUNCTIONS else ELEMENT_SHAPES
        for shape in shapes:
            for dtype in DTYPES:
                for layout in LAYOUTS:
                    cases.append(Case(function, shape, dtype, layout))
    return cases


# The headline cases at modest sizes: under a minute on 2 cores with peers.
QUICK_CASES = (
    Case("cross_entropy", (4096, 1000), "float32", "contiguous"),
    Case("cross_entropy", (4096, 1000), "float32", "strided"),
    Case("cross_entropy", (4096, 1000), "float64", "contiguous"),
    Case("cross_entropy", (65536, 10), "float32", "contiguous"),
    Case("cross_entropy", (1, 10), "float32", "contiguous"),
    Case("nll_loss", (4096, 1000), "float32", "contiguous"),
    Case("binary_cross_entropy_with_logits", (10**6,), "float32", "contiguous"),
    Case("mse_loss", (10**6,), "float32", "contiguous"),
    Case("softmax", (4096, 1000), "float32", "contiguous"),
    Case("sigmoid", (10**6,), "float32", "contiguous"),
)


def quick_cases():
    return list(QUICK_CASES)


def case_by_id(case_id):
    for case in all_cases():
        if case.id == case_id:
            return case
    raise KeyError(case_id)


# ------------------------------------------------------------------ inputs

@dataclasses.dataclass
class Inputs:
    args: tuple          # positional arguments of the public function
    kwargs: dict         # keywords (return_grad=True for losses)


def _lay_out(values, layout):
    """``values`` (contiguous) copied into the requested memory layout."""
    if layout == "contiguous":
        return np.ascontiguousarray(values)
    wide = np.empty(values.shape[:-1] + (2 * values.shape[-1],), dtype=values.dtype)
    view = wide[..., ::2]
    view[...] = values
    return view


def make_inputs(case, seed=0):
    """Random inputs of ``case`` (deterministic for a given seed), of the
    kinds crossent._api.FUNCTIONS gives its arguments."""
    import crossent

    rng = np.random.default_rng(seed)
    dtype = np.dtype(case.dtype)
    logits = 3.0 * rng.standard_normal(case.shape, dtype=dtype)
    function = _functions()[case.function]
    rows = function.over == "rows"
    first = {"logits": lambda: logits,
             "probs": lambda: (crossent.softmax if rows else crossent.sigmoid)(logits,
                                                                                backend=REFERENCE),
             "log_probs": lambda: crossent.log_softmax(logits, backend=REFERENCE)}[function.pred]()
    args = (_lay_out(first, case.layout),)
    if function.target == "labels":
        args += (rng.integers(0, case.shape[-1], size=case.shape[:-1], dtype=np.int64),)
    elif function.target == "binary":
        args += (_lay_out(rng.integers(0, 2, size=case.shape).astype(dtype), case.layout),)
    elif function.target == "real":
        args += (_lay_out(rng.standard_normal(case.shape, dtype=dtype), case.layout),)
    elif function.target == "probs":
        other = rng.standard_normal(case.shape, dtype=dtype)
        args += (_lay_out(crossent.softmax(other, backend=REFERENCE), case.layout),)
    return Inputs(args, {"return_grad": True} if case.has_grad else {})


def expected_result(case, inputs):
    """The NumPy reference in float64 on contiguous copies: the yardstick."""
    import crossent

    args = tuple(np.ascontiguousarray(a, dtype=np.float64) if a.dtype.kind == "f" else a
                 for a in inputs.args)
    result = getattr(crossent, case.function)(*args, backend=REFERENCE, **inputs.kwargs)
    return _as_numpy_result(case, result)


def _as_numpy_result(case, result):
    if case.has_grad:
        loss, grad = result
        return float(loss), np.asarray(grad)
    return np.asarray(result)


# float32 results are compared loosely (float32 arithmetic vs a float64
# yardstick); float64 ones to well within what a reordered sum can change.
TOLERANCE = {"float32": 2e-4, "float64": 1e-9}


def _mismatch(name, actual, expected, tol):
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != expected.shape:
        return f"{name} has shape {actual.shape}, expected {expected.shape}"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    bad = ~np.isclose(actual, expected, rtol=tol, atol=tol * scale)
    if not bad.any():
        return None
    where = int(np.flatnonzero(bad.ravel())[0])
    return (f"{name} differs from the reference at flat index {where}: "
            f"{actual.ravel()[where]!r} vs {expected.ravel()[where]!r} "
            f"({int(bad.sum())} of {bad.size} elements beyond rtol={tol})")


def check_result(case, result, expected):
    """None when ``result`` (normalised) matches ``expected``, else a message."""
    tol = TOLERANCE[case.dtype]
    if case.has_grad:
        problem = _mismatch("loss", np.array(result[0]), np.array(expected[0]), tol)
        return problem or _mismatch("gradient", result[1], expected[1], tol)
    return _mismatch("result", result, expected, tol)


# ---------------------------------------------------------- implementations

@dataclasses.dataclass
class Prepared:
    run: object          # () -> raw result; this is what is timed
    normalize: object    # raw result -> float loss and ndarray grad, or ndarray


def peer_installed(name):
    module = {"torch": "torch", "sklearn": "sklearn", "jax": "jax"}[name]
    return importlib.util.find_spec(module) is not None


def installed_peers():
    return [name for name in PEERS if peer_installed(name)]


# What to install for each peer.  torch only with its exact pin: an unpinned
# torch pulls a multi-GB CUDA build (the torch extra, for crossent.torch,
# keeps a torch installed this way).
PEER_INSTALL = {"torch": "pip install torch==2.13.0",
                "sklearn": "pip install scikit-learn",
                "jax": "pip install jax jaxlib"}
PEERS_EXTRA = ("sklearn", "jax")   # pyproject's "peers" extra
PEERS_EXTRA_INSTALL = "pip install 'crossent[peers]'"


def install_hint(names):
    """What to install for the missing peers ``names``, as one line."""
    hint = "; ".join(f"{name}: {PEER_INSTALL[name]}" for name in names)
    if any(name in PEERS_EXTRA for name in names):
        hint += f" (scikit-learn and JAX both: {PEERS_EXTRA_INSTALL})"
    return hint


def peer_version(name):
    return importlib.import_module(name).__version__


SKLEARN_FUNCTIONS = frozenset(("cross_entropy", "binary_cross_entropy_with_logits", "mse_loss"))
# PyTorch has no loss over probabilities for many classes, and its focal loss
# is torchvision's, which does not install beside it here.
TORCH_FUNCTIONS = frozenset(FUNCTIONS) - {"categorical_cross_entropy", "focal_loss"}
# optax and jax.nn have no loss over probabilities, no focal loss and no
# batch-mean KL divergence (the same as _bench_jax.FUNCTIONS).
JAX_FUNCTIONS = frozenset(FUNCTIONS) - {"categorical_cross_entropy", "binary_cross_entropy",
                                        "focal_loss", "kl_div"}


def supports(impl, function):
    if impl == "torch":
        return function in TORCH_FUNCTIONS
    if impl == "sklearn":
        return function in SKLEARN_FUNCTIONS
    if impl == "jax":
        return function in JAX_FUNCTIONS
    return True  # every crossent backend implements every function


def implementations(function, backends, peers):
    """Implementations of ``function``: the reference first, then backends, then peers."""
    names = [REFERENCE] + [b for b in backends if b != REFERENCE] + list(peers)
    return [name for name in names if supports(name, function)]


def prepare(impl, case, inputs, n_threads):
    """A ready-to-time call of ``impl`` on ``inputs`` with ``n_threads`` threads."""
    if impl == "torch":
        return _prepare_torch(case, inputs, n_threads)
    if impl == "sklearn":
        return _prepare_sklearn(case, inputs, n_threads)
    if impl == "jax":
        return _prepare_jax(case, inputs)
    return _prepare_crossent(impl, case, inputs, n_threads)


DEFAULT = "default"   # crossent's plain call: no backend=, no n_threads=


def _prepare_crossent(backend, case, inputs, n_threads):
    import crossent

    if backend == DEFAULT:
        crossent.set_num_threads(n_threads)   # the run's thread count, as the default
        run = functools.partial(getattr(crossent, case.function), *inputs.args, **inputs.kwargs)
    else:
        run = functools.partial(getattr(crossent, case.function), *inputs.args,
                                backend=backend, n_threads=n_threads, **inputs.kwargs)
    return Prepared(run, functools.partial(_as_numpy_result, case))


def _prepare_torch(case, inputs, n_threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(n_threads)
    tensors = [torch.from_numpy(a) for a in inputs.args]
    fn = case.function
    if not case.has_grad:
        op = {"softmax": lambda z: torch.softmax(z, -1),
              "log_softmax": lambda z: torch.log_softmax(z, -1),
              "logsumexp": lambda z: torch.logsumexp(z, -1),
              "sigmoid": torch.sigmoid,
              "log_sigmoid": F.logsigmoid}[fn]

        def run():
            with torch.no_grad():
                return op(tensors[0])
        return Prepared(run, lambda out: out.numpy())

    loss_fn = {"cross_entropy": F.cross_entropy, "nll_loss": F.nll_loss,
               "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
               "binary_cross_entropy": F.binary_cross_entropy, "mse_loss": F.mse_loss,
               "kl_div": functools.partial(F.kl_div, reduction="batchmean")}[fn]
    leaf = tensors[0].requires_grad_(True)

    def run():
        loss = loss_fn(leaf, tensors[1])
        (grad,) = torch.autograd.grad(loss, leaf)
        return loss, grad
    return Prepared(run, lambda out: (float(out[0].item()), out[1].numpy()))


def _prepare_sklearn(case, inputs, n_threads):
    """scikit-learn's loss objects, with the mean taken inside the timed call.

    Its "half" losses differ from crossent's by known factors: the multinomial
    and binomial ones are the cross-entropies themselves, HalfSquaredError is
    half the squared error (so loss and gradient are doubled).  Its 1-D losses
    need C-contiguous arrays, so a strided input pays for the copy, as a user
    of scikit-learn would.
    """
    from sklearn._loss import loss as sk

    first, target = inputs.args
    samples = first.shape[0]  # rows of a multinomial input, elements of a binary one
    if case.function == "cross_entropy":
        loss_obj, factor = sk.HalfMultinomialLoss(n_classes=first.shape[-1]), 1.0
        target = target.astype(first.dtype)
    elif case.function == "binary_cross_entropy_with_logits":
        loss_obj, factor = sk.HalfBinomialLoss(), 1.0
    else:
        loss_obj, factor = sk.HalfSquaredError(), 2.0

    def run():
        raw = first if first.ndim == 2 else np.ascontiguousarray(first)
        losses, grad = loss_obj.loss_gradient(np.ascontiguousarray(target), raw,
                                              n_threads=n_threads)
        grad *= factor / samples
        return factor * float(losses.mean(dtype=np.float64)), grad
    return Prepared(run, lambda out: out)


def _prepare_jax(case, inputs):
    """JAX's jitted call (``_bench_jax``: optax's formulas), compiled and with
    its arrays on the device before anything is timed.

    ``jax.device_put`` makes a strided input contiguous (JAX arrays have no
    strides), so a strided case times JAX on the contiguous copy: the
    transfer a JAX user pays once is outside the timed call.

    ``n_threads`` does not reach XLA, which decides its own threading (at the
    benchmark's sizes its fused CPU loops run as fast with
    ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
    intra_op_parallelism_threads=1`` as without).
    """
    import jax

    jax.config.update("jax_enable_x64", True)  # else float64 silently becomes float32
    from crossent import _bench_jax

    run = _bench_jax.ready_call(case.function, inputs.args)
    if case.has_grad:
        return Prepared(run, lambda out: (float(out[0]), np.asarray(out[1])))
    return Prepared(run, np.asarray)
