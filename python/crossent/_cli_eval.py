"""``crossent eval``: the command line over :func:`crossent._eval.evaluate_report`."""
import json
import math
import sys

from . import _backends, _cli_dask
from ._cli_info import two_columns
from ._eval import evaluate_report


def add_arguments(parser):
    parser.add_argument("loss", metavar="LOSS",
                        help="a loss function's name, e.g. cross_entropy, "
                             "binary_cross_entropy_with_logits, mse_loss")
    parser.add_argument("pred", metavar="PRED", help="predictions: FILE.npy or FILE.npz:KEY; "
                        "a glob of .npy shards ('preds/*.npy') or STORE.zarr:ARRAY runs on Dask")
    parser.add_argument("target", metavar="TARGET", help="targets: as PRED (shards pair with "
                        "PRED's in sorted order)")
    parser.add_argument("--weight", metavar="FILE",
                        help="class weights (multiclass losses) or element-wise weights")
    parser.add_argument("--sample-weight", metavar="FILE", help="one weight per sample")
    parser.add_argument("--pos-weight", metavar="FILE",
                        help="positive-class weights (binary_cross_entropy_with_logits)")
    parser.add_argument("--ignore-index", type=int, metavar="INT",
                        help="class index whose samples are ignored (default -100)")
    parser.add_argument("--label-smoothing", type=float, metavar="EPS", help="in [0, 1]")
    parser.add_argument("--reduction", choices=("mean", "sum", "batchmean"),
                        help="default: the loss's own (batchmean for kl_div, else mean)")
    parser.add_argument("--alpha", type=float, metavar="A", help="focal_loss's alpha")
    parser.add_argument("--gamma", type=float, metavar="G", help="focal_loss's gamma")
    parser.add_argument("--log-target", action="store_true", default=None,
                        help="kl_div: TARGET holds log-probabilities")
    parser.add_argument("--axis", type=int, metavar="INT",
                        help="the class axis of PRED (default -1)")
    parser.add_argument("--chunk-rows", type=int, metavar="N",
                        help="rows per chunk (default: about 64 MiB of predictions)")
    parser.add_argument("--threads", type=int, metavar="N", help="default: all cores")
    parser.add_argument("--backend", choices=_backends.ORDER,
                        help="default: the fastest available")
    parser.add_argument("--metrics", metavar="LIST",
                        help="from the same pass, comma-separated: accuracy, topK (e.g. top5), "
                             "perplexity; binary losses: accuracy, brier, perplexity")
    parser.add_argument("--json", action="store_true",
                        help="print loss, metrics, samples, weight sum, dtype, backend, rows/s "
                             "as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--z-loss", type=float, metavar="LAMBDA",
                        help="cross_entropy, linear_cross_entropy: add LAMBDA*lse^2 per sample")
    parser.add_argument("--softcap", type=float, metavar="C",
                        help="cross_entropy, linear_cross_entropy: logits -> C*tanh(z/C)")
    parser.add_argument("--linear-weight", metavar="FILE",
                        help="linear_cross_entropy: the head's (V, d) weight; PRED is then "
                             "the hidden states (N, ..., d)")
    parser.add_argument("--bias", metavar="FILE", help="linear_cross_entropy: the head's bias")
    _cli_dask.add_arguments(parser)


def run(args):
    if args.loss == "linear_cross_entropy" or args.linear_weight or args.bias:
        return _run_linear(args)
    from ._eval import loss_names
    if args.loss not in loss_names():
        print(f"crossent eval: error: LOSS: expected one of {', '.join(loss_names())}, or "
              f"linear_cross_entropy (with --linear-weight), got {args.loss!r}", file=sys.stderr)
        return 1
    if _cli_dask.wanted(args):   # shard globs, Zarr, a cluster
        return _cli_dask.run(args)
    options = {"z_loss": args.z_loss, "softcap": args.softcap,
               "weight": args.weight, "sample_weight": args.sample_weight,
               "pos_weight": args.pos_weight, "ignore_index": args.ignore_index,
               "label_smoothing": args.label_smoothing, "axis": args.axis,
               "alpha": args.alpha, "gamma": args.gamma, "log_target": args.log_target}
    try:
        report = evaluate_report(args.loss, args.pred, args.target, reduction=args.reduction,
                                 chunk_rows=args.chunk_rows, backend=args.backend,
                                 n_threads=args.threads, metrics=args.metrics,
                                 progress=not args.quiet and sys.stderr.isatty(), **options)
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"crossent eval: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("crossent eval: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(_report_dict(report)))
    else:
        print(_report_table(args.loss, report))
    return 0


def _report_table(loss, report):
    """The human-readable report: the loss and the metrics asked for, then
    what was read and how fast."""
    rate = report.rows / report.seconds if report.seconds > 0 else float("inf")
    lines = [(f"{loss} ({report.reduction})", str(report.loss))]
    lines += [(name, f"{value:.6g}") for name, value in report.metrics.items()]
    lines += [("rows", f"{report.rows:,}"), ("rows/s", f"{rate:,.0f}"),
              ("read", f"{_size(report.bytes_read)} in {report.seconds:.3g} s "
                       f"({report.backend}, {report.dtype})")]
    return two_columns(lines)


def _size(n_bytes):
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000


def _run_linear(args):
    from ._eval_linear import evaluate_linear_report
    try:
        if args.loss != "linear_cross_entropy":
            raise ValueError(f"--linear-weight and --bias apply to linear_cross_entropy only, "
                             f"not to {args.loss}")
        if args.linear_weight is None:
            raise ValueError("linear_cross_entropy needs --linear-weight FILE (the head's "
                             "(V, d) weight)")
        for option, value in (("--pos-weight", args.pos_weight), ("--alpha", args.alpha),
                              ("--gamma", args.gamma), ("--log-target", args.log_target),
                              ("--axis", args.axis)):
            if value is not None:
                raise ValueError(f"{option} does not apply to linear_cross_entropy")
        if args.metrics:
            raise ValueError("--metrics: linear_cross_entropy gives none but the perplexity, "
                             "which its report always shows")
        report, mean = evaluate_linear_report(
            args.pred, args.target, args.linear_weight, bias=args.bias, weight=args.weight,
            sample_weight=args.sample_weight, ignore_index=args.ignore_index,
            label_smoothing=args.label_smoothing, z_loss=args.z_loss, softcap=args.softcap,
            reduction=args.reduction, chunk_rows=args.chunk_rows, backend=args.backend,
            n_threads=args.threads, progress=not args.quiet and sys.stderr.isatty())
    except (OSError, ValueError, TypeError, MemoryError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"crossent eval: error: {message}", file=sys.stderr)
        return 1
    try:
        perplexity = math.exp(mean)
    except OverflowError:
        perplexity = math.inf
    if args.json:
        print(json.dumps({**_report_dict(report), "perplexity": perplexity}))
    else:
        print(_report_table(args.loss, report._replace(metrics={"perplexity": perplexity})))
    return 0


def _report_dict(report):
    return {"loss": float(report.loss), "reduction": report.reduction,
            "samples": report.samples, "weight_sum": report.weight_sum, "dtype": report.dtype,
            "backend": report.backend, "rows": report.rows, "chunks": report.chunks,
            "seconds": report.seconds, "bytes_read": report.bytes_read,
            "metrics": report.metrics,
            "rows_per_second": report.rows / report.seconds if report.seconds > 0 else None}
