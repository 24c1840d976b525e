"""Command-line interface: ``fxlic <command> [options]`` (see ``fxlic --help``)."""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .spec import SPEC_VERSION


class CliError(Exception):
    """An error to report to the user as one line, with a non-zero exit."""


def cmd_info(args) -> int:
    import numba
    import numpy as np

    print(f"fxlic {__version__}  spec {SPEC_VERSION}")
    print(f"numpy {np.__version__}  numba {numba.__version__}")
    if args.model:
        from .io.modelfile import describe_model_file
        print(describe_model_file(args.model))
    return 0


def cmd_selfcheck(args) -> int:
    from .selfcheck import run_selfcheck
    return run_selfcheck(verbose=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fxlic",
        description="Bit-exact fixed-point learned image compression (8-bit weights and activations).")
    p.add_argument("--version", action="version", version=f"fxlic {__version__} ({SPEC_VERSION})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="print versions, or describe a model file")
    s.add_argument("model", nargs="?", help="a .fxq model file")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("selfcheck", help="run the integer engine on a built-in case and check "
                                         "reference == numba")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_selfcheck)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"fxlic {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
