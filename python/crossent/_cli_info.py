"""``crossent info``: crossent.info(), readable."""
import json


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print the dict as JSON")


def run(args):
    import crossent

    info = crossent.info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(two_columns(info.items()))
    return 0


def two_columns(pairs):
    """(name, value) pairs as lines, the values aligned: the readable output
    of crossent info and crossent eval."""
    pairs = list(pairs)
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in pairs)
