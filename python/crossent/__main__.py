"""The ``crossent`` command line (also ``python -m crossent``).

Each sub-command lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int`` (the exit status); this file only wires them up, so
that importing crossent never pays for the CLI's imports.
"""
import argparse
import importlib
import os
import sys

# sub-command -> (module, one-line help)
COMMANDS = {
    "info": ("crossent._cli_info", "show the build: backends, SIMD variant, threads, flags"),
    "bench": ("crossent._bench", "time every loss on every backend against the NumPy reference"),
    "eval": ("crossent._cli_eval", "the loss of stored predictions (.npy/.npz), in bounded memory"),
    "demo": ("crossent._demo", "the founding note's experiment: MSE vs cross-entropy behind a sigmoid"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="crossent", description="Fast cross-entropy losses for NumPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        module = importlib.import_module(module_name)
        module.add_arguments(sub_parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        status = module.run(args)
        sys.stdout.flush()      # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # the reader went away (`crossent eval ... | head -1`): no traceback,
        # and no second error when Python flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
