"""Command-line interface: ``fxlic <command> [options]`` (see ``fxlic --help``).

Each command lives in ``fxlic/commands/<name>.py`` with ``register(subparsers)``;
a command that runs compiled kernels registers ``runs_kernels=True`` in its
defaults, and the CLI then sets Numba's CPU target up for it without SciPy's
BLAS probe (``fxlic.kernels.numba_start``; issue 20);
a command raises ``CliError`` for anything the user did wrong, which is
printed as one line with a non-zero exit (no traceback).  A closed stdout
(``fxlic models | head -3``) ends the command quietly with status 141.
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
            "selfcheck", "eval", "cost"]

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
    try:
        return _run(argv)
    except BrokenPipeError:  # `fxlic models | head -3`: the reader left; stop quietly
        return _broken_pipe()


def _run(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "runs_kernels", False):
        from .kernels.numba_start import set_up_cpu_target_without_blas
        set_up_cpu_target_without_blas()
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
        return rc
    except CliError as e:
        print(f"fxlic {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _broken_pipe() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise
    again, and exit with 128 + SIGPIPE as a killed writer would."""
    import os
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a descriptor (tests)
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
