"""Command-line interface: ``fxlic <command> [options]`` (see ``fxlic --help``).

Each command lives in ``fxlic/commands/<name>.py`` with ``register(subparsers)``;
a command raises ``CliError`` for anything the user did wrong, which is
printed as one line with a non-zero exit (no traceback).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import CliError
from .spec import SPEC_VERSION

#: command modules, in the order ``fxlic --help`` lists them
COMMANDS = ["demo", "compress", "decompress", "models", "info", "quantize", "vectors", "verify",
            "selfcheck", "eval"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fxlic",
        description="Bit-exact fixed-point learned image compression (8-bit weights and activations).")
    p.add_argument("--version", action="version", version=f"fxlic {__version__} ({SPEC_VERSION})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith(f"commands.{name}"):
                continue  # command not written yet
            raise
        mod.register(sub)
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
