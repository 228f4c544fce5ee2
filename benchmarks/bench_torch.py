"""crossent.torch against torch.nn.functional: forward plus backward.

    python benchmarks/bench_torch.py [--threads 2] [--repeat 7] [--dtype float32]

Each case times ``loss = f(x, target); loss.backward()`` for the PyTorch
original and for crossent.torch's drop-in, alternating the two within each
repeat so that both see the same machine load, and prints the best time of
each and their ratio (PyTorch time / crossent time: above 1, crossent is
faster).  The focal loss's PyTorch side is torchvision's formula written in
torch operations (torchvision.ops.sigmoid_focal_loss), reduced by the mean.
``linear_cross_entropy`` differentiates the hidden states and the weight, and
its PyTorch side is timed twice: F.linear_cross_entropy's reference path
(the materialised logits) and its chunked one (LinearCrossEntropyOptions()).
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import crossent
import crossent.torch as cet


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="mean"):
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean() if reduction == "mean" else loss.sum()


# (name, shape, PyTorch's function, crossent's, the kind of target)
CASES = [
    ("cross_entropy", (4096, 1000), F.cross_entropy, cet.cross_entropy, "labels"),
    ("cross_entropy", (65536, 10), F.cross_entropy, cet.cross_entropy, "labels"),
    ("cross_entropy", (256, 32000), F.cross_entropy, cet.cross_entropy, "labels"),
    ("cross_entropy", (32, 128000), F.cross_entropy, cet.cross_entropy, "labels"),
    ("cross_entropy", (1, 10), F.cross_entropy, cet.cross_entropy, "labels"),
    ("nll_loss", (4096, 1000), F.nll_loss, cet.nll_loss, "labels"),
    ("binary_cross_entropy_with_logits", (10**6,), F.binary_cross_entropy_with_logits,
     cet.binary_cross_entropy_with_logits, "binary"),
    ("binary_cross_entropy_with_logits", (10**7,), F.binary_cross_entropy_with_logits,
     cet.binary_cross_entropy_with_logits, "binary"),
    ("focal_loss", (10**6,), sigmoid_focal_loss,
     lambda z, y: cet.focal_loss(z, y, reduction="mean"), "binary"),
    # (N, d, V): the hidden states, the weight (requiring grad) and the
    # vocabulary; PyTorch's reference (materialised) path and its chunked one
    ("linear_cross_entropy", (1024, 256, 32000), F.linear_cross_entropy,
     cet.linear_cross_entropy, "linear"),
    ("linear_cross_entropy/chunked", (1024, 256, 32000),
     lambda h, w, t: F.linear_cross_entropy(h, w, t, options=torch.nn.LinearCrossEntropyOptions()),
     cet.linear_cross_entropy, "linear"),
]


def inputs(name, shape, kind, dtype, seed=0):
    """(x, target, {name: another operand that requires grad})."""
    g = torch.Generator().manual_seed(seed)
    if kind == "linear":
        n, d, v = shape
        h = torch.randn(n, d, generator=g, dtype=dtype)
        w = torch.randn(v, d, generator=g, dtype=dtype) / d ** 0.5
        target = torch.randint(0, v, (n,), generator=g)
        return h.requires_grad_(), target, {"linear_weight": w.requires_grad_()}
    x = 3 * torch.randn(*shape, generator=g, dtype=dtype)
    if name == "nll_loss":
        x = torch.log_softmax(x, dim=-1)
    if kind == "labels":
        target = torch.randint(0, shape[-1], shape[:-1], generator=g)
    else:
        target = (torch.rand(*shape, generator=g) < 0.5).to(dtype)
    return x.requires_grad_(), target, {}


def forward_backward(function, x, target, others):
    x.grad = None
    for tensor in others.values():
        tensor.grad = None
    loss = function(x, others["linear_weight"], target) if others else function(x, target)
    loss.backward()


def best_times(functions, x, target, others, repeat, min_time=0.2):
    """Best seconds per call of each function, alternating them in each repeat."""
    for f in functions:
        forward_backward(f, x, target, others)                  # warm up
    start = time.perf_counter()
    forward_backward(functions[0], x, target, others)
    one = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(min_time / one / len(functions)))
    best = [float("inf")] * len(functions)
    for _ in range(repeat):
        for i, f in enumerate(functions):
            start = time.perf_counter()
            for _ in range(number):
                forward_backward(f, x, target, others)
            best[i] = min(best[i], (time.perf_counter() - start) / number)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    crossent.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, crossent {crossent.__version__} "
          f"({crossent.get_backend()}, {crossent.info()['simd']}), {args.threads} threads, "
          f"{args.dtype}, forward + backward, best of {args.repeat}")
    print(f"{'case':<50} {'torch ms':>10} {'crossent ms':>12} {'speed-up':>9}")
    for name, shape, theirs, ours, kind in CASES:
        x, target, others = inputs(name, shape, kind, dtype)
        torch_time, crossent_time = best_times([theirs, ours], x, target, others, args.repeat)
        case = f"{name}[{'x'.join(map(str, shape))}]"
        print(f"{case:<50} {torch_time * 1e3:>10.3f} {crossent_time * 1e3:>12.3f} "
              f"{torch_time / crossent_time:>8.2f}x")


if __name__ == "__main__":
    main()
