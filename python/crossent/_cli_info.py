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
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0
