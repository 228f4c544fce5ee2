"""``crossent demo``: the founding note's experiment, run.

One logistic unit ``a = sigmoid(X @ w + b)``, one synthetic data set, one
saturated starting point (every sample on the wrong side, ``|z|`` about 9),
one step size and one number of steps -- trained by gradient descent once with
the mean squared error and once with the binary cross-entropy.  The MSE
gradient carries ``sigma'(z) ~ e^-|z|`` and stalls; the cross-entropy gradient
``a - y`` does not (docs/math.md, section 4).

``run_experiment`` returns the numbers; ``format_report`` prints them;
``plot_experiment`` draws them (matplotlib is imported only there).
"""
import os
import sys

import numpy as np

# Not "from . import linear": crossent imports linear lazily through a module
# __getattr__, and a from-import would ask that __getattr__ first.
import crossent.linear as linear  # noqa: PLR0402

DEFAULT_SEED = 0
DEFAULT_STEPS = 300
DEFAULT_STEP_SIZE = 1.0
N_SAMPLES = 200
# The two classes are tight clusters around +/- CLASS_DIRECTION (a unit
# vector), so that the starting logits all lie near -/+ START_SATURATION.
CLASS_DIRECTION = np.array([0.8, 0.6])
CLUSTER_SPREAD = 0.1
START_SATURATION = 9.0
LOSS_NAMES = {"mse": "MSE", "bce": "cross-entropy"}
PLOT_HINT = "crossent demo: --plot needs matplotlib: pip install crossent[plot]"


def make_data(seed=DEFAULT_SEED, n_samples=N_SAMPLES):
    """Balanced two-class data ``(X, y)``: class 1 around +CLASS_DIRECTION,
    class 0 around -CLASS_DIRECTION, deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples) % 2).astype(np.float64)
    centres = np.where(y[:, None] == 1, CLASS_DIRECTION, -CLASS_DIRECTION)
    X = centres + CLUSTER_SPREAD * rng.standard_normal((n_samples, CLASS_DIRECTION.size))
    return X, y


def saturated_start():
    """``(w, b)`` pointing the wrong way: z = x·w is about -9 for class 1 and
    +9 for class 0, where sigma'(z) is about 1e-4."""
    return -START_SATURATION * CLASS_DIRECTION, 0.0


def milestones(steps):
    """0, then 10, 20, 50, 100, 200, 500, ... below ``steps``, then ``steps``."""
    marks, scale = [0], 10
    while scale < steps:
        marks += [m for m in (scale, 2 * scale, 5 * scale) if m < steps]
        scale *= 10
    return marks + [steps] if steps > 0 else marks


def _measure(X, y, w, b, backend):
    """Both losses and the accuracy of the unit (w, b) on (X, y)."""
    mse, _, _ = linear.logistic(X, y, w, b, loss="mse", backend=backend)
    bce, _, _ = linear.logistic(X, y, w, b, loss="bce", backend=backend)
    accuracy = np.mean((X @ w + b > 0) == (y == 1))
    return float(mse), float(bce), float(accuracy)


def train(X, y, w, b, loss, steps, step_size, backend=None):
    """Plain gradient descent on ``loss``; the history of both losses and the
    accuracy at every step (steps + 1 entries, the start included)."""
    w = np.array(w, dtype=np.float64)
    history = {"mse": [], "bce": [], "accuracy": []}
    for step in range(steps + 1):
        for key, value in zip(history, _measure(X, y, w, b, backend)):
            history[key].append(value)
        if step == steps:
            break
        _, dw, db = linear.logistic(X, y, w, b, loss=loss, backend=backend)
        w -= step_size * dw
        b -= step_size * float(db)
    return {key: np.array(values) for key, values in history.items()}


def _gradient_norm(X, y, w, b, loss, backend):
    _, dw, db = linear.logistic(X, y, w, b, loss=loss, backend=backend)
    return float(np.sqrt(np.sum(dw * dw) + db * db))


def run_experiment(seed=DEFAULT_SEED, steps=DEFAULT_STEPS, step_size=DEFAULT_STEP_SIZE,
                   n_samples=N_SAMPLES, backend=None):
    """Train the same unit from the same saturated start with MSE and with
    cross-entropy; return every number the report and the plot show."""
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: expected an integer >= 0; got {steps!r}")
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size: expected a finite number > 0; got {step_size!r}")
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples: expected an integer >= 2; got {n_samples!r}")
    X, y = make_data(seed, n_samples)
    w0, b0 = saturated_start()
    z0 = X @ w0 + b0
    abs_z0 = np.abs(z0)
    return {
        "seed": seed, "steps": int(steps), "step_size": float(step_size),
        "n_samples": int(n_samples), "n_features": X.shape[1],
        "start_abs_logit": {"min": float(abs_z0.min()), "median": float(np.median(abs_z0)),
                            "max": float(abs_z0.max())},
        "start_wrong_side": float(np.mean((z0 > 0) != (y == 1))),
        "start_grad_norm": {loss: _gradient_norm(X, y, w0, b0, loss, backend)
                            for loss in LOSS_NAMES},
        "history": {loss: train(X, y, w0, b0, loss, steps, step_size, backend)
                    for loss in LOSS_NAMES},
        "milestones": milestones(steps),
    }


def format_report(result):
    """The experiment as a short text table."""
    z, norms = result["start_abs_logit"], result["start_grad_norm"]
    lines = [
        (f"crossent demo: one logistic unit a = sigmoid(X @ w + b), {result['n_samples']} "
         f"samples, {result['n_features']} features (seed {result['seed']})"),
        (f"saturated start: {result['start_wrong_side']:.0%} of the samples on the wrong side, "
         f"|z| from {z['min']:.1f} to {z['max']:.1f} (median {z['median']:.1f})"),
        (f"gradient descent from that start with each loss: step size "
         f"{result['step_size']:g}, {result['steps']} steps"),
        "",
        "gradient norm |(dw, db)| at the start",
        f"  MSE            {norms['mse']:.3e}",
        f"  cross-entropy  {norms['bce']:.3e}   ({norms['bce'] / norms['mse']:.0f} x the MSE one)",
        "",
        "        trained with MSE                      trained with cross-entropy",
        "  step  MSE        BCE        accuracy      MSE        BCE        accuracy",
    ]
    for step in result["milestones"]:
        row = f"{step:6d}"
        for loss in LOSS_NAMES:
            h = result["history"][loss]
            row += f"  {h['mse'][step]:.3e}  {h['bce'][step]:.3e}  {h['accuracy'][step]:6.1%}    "
        lines.append(row.rstrip())
    lines.append("(MSE = 1/(2n) sum (a - y)^2, BCE = mean binary cross-entropy; "
                 "each model is measured with both)")
    return "\n".join(lines)


def _gradient_curves(z, backend):
    """|dl/dz| of one sample with target 1, for each loss, at the logits z."""
    ones = np.ones_like(z)
    return {loss: np.abs(linear._logistic_logit_grad(z, ones, loss, reduction="sum",
                                                     backend=backend)[1])
            for loss in LOSS_NAMES}


def plot_experiment(result, path, backend=None):
    """Three panels: sigma and sigma'; |dl/dz| of each loss against z; the
    training curves.  Raises ImportError when matplotlib is missing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = np.linspace(-12.0, 12.0, 481)
    start = -result["start_abs_logit"]["median"]
    fig, (ax_sigmoid, ax_grad, ax_train) = plt.subplots(1, 3, figsize=(15, 4.2))

    sigmoid_z = linear._crossent.sigmoid(z, backend=backend)
    ax_sigmoid.plot(z, sigmoid_z, label="σ(z)")
    ax_sigmoid.plot(z, linear._sigmoid_derivative(z, sigmoid_z, backend),
                    label="σ'(z) = σ(z)(1 − σ(z))")
    ax_sigmoid.set(title="the sigmoid saturates", xlabel="z")

    for loss, grad in _gradient_curves(z, backend).items():
        ax_grad.semilogy(z, grad, label=f"{LOSS_NAMES[loss]}")
    ax_grad.set(title="|∂l/∂z| of one sample with y = 1", xlabel="z")

    for ax in (ax_sigmoid, ax_grad):
        ax.axvline(start, color="grey", linestyle=":", label=f"median start, z = {start:.1f}")
        ax.legend(loc="best", fontsize=8)

    steps = np.arange(result["steps"] + 1)
    for loss, history in result["history"].items():
        ax_train.semilogy(steps, history[loss],
                          label=f"trained with {LOSS_NAMES[loss]}: its loss")
    ax_accuracy = ax_train.twinx()
    for loss, history in result["history"].items():
        ax_accuracy.plot(steps, history["accuracy"], linestyle="--",
                         label=f"trained with {LOSS_NAMES[loss]}: accuracy")
    ax_accuracy.set(ylabel="accuracy (dashed)", ylim=(-0.05, 1.05))
    ax_train.set(title=f"gradient descent, step size {result['step_size']:g}",
                 xlabel="step", ylabel="training loss (solid)")
    handles = ax_train.get_legend_handles_labels()
    extra = ax_accuracy.get_legend_handles_labels()
    ax_train.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper right",
                    bbox_to_anchor=(0.98, 0.58), fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_arguments(parser):
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the synthetic data (default {DEFAULT_SEED})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"gradient-descent steps for each loss (default {DEFAULT_STEPS})")
    parser.add_argument("--step-size", type=float, default=DEFAULT_STEP_SIZE,
                        help=f"the learning rate, the same for both losses "
                             f"(default {DEFAULT_STEP_SIZE:g})")
    parser.add_argument("--backend", default=None,
                        help="crossent backend for the losses (default: the fastest)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="draw sigma, the gradients and the training curves into PNG")


def plot_path_problem(path):
    """Why matplotlib could not write the plot to path, or None: checked
    before the run, so that a typo costs no training."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"no directory {directory}"
    from matplotlib.backend_bases import FigureCanvasBase
    extension = os.path.splitext(path)[1][1:].lower()
    supported = FigureCanvasBase.get_supported_filetypes()
    if extension and extension not in supported:
        return f"expected a file name ending in one of {', '.join('.' + e for e in sorted(supported))}"
    return None


def run(args):
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401  (checked before the run, used by plot_experiment)
        except ImportError:
            print(PLOT_HINT, file=sys.stderr)
            return 2
        problem = plot_path_problem(args.plot)
        if problem:
            print(f"crossent demo: --plot {args.plot}: {problem}", file=sys.stderr)
            return 2
    try:
        result = run_experiment(seed=args.seed, steps=args.steps, step_size=args.step_size,
                                backend=args.backend)
    except ValueError as exc:
        print(f"crossent demo: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.plot is not None:
        try:
            plot_experiment(result, args.plot, backend=args.backend)
        except OSError as exc:
            print(f"crossent demo: --plot {args.plot}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}")
    return 0
