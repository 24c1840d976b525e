"""Input and output files of every fxlic command and loader.

Rules (docs/MODEL_FORMAT.md 6, README "Reliability"):

* F1 an input is a regular file; a missing path, a symbolic-link loop, a
  directory, a device or FIFO, or a permission problem is refused with a
  one-line message that says which (``check_input``);
* F2 an output never names an input: the same path, or the same file through
  a symbolic or hard link (``check_output``, by ``os.path.samefile`` and
  ``realpath``);
* F3 outputs are written atomically (temporary file in the same directory,
  then ``os.replace``; nothing is left behind on failure) with the mode a
  plain ``open()`` would give, 0666 minus the umask (``atomic_write``).
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile


def describe_oserror(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno == errno.ENOTDIR:
        return "a component of the path is not a directory"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or e.__class__.__name__


def check_input(path: str, exc=ValueError, kind: str = "a file") -> int:
    """F1: ``path`` is a readable regular file; returns its size in bytes."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOENT and os.path.islink(path):
            raise exc(f"{path}: broken symbolic link") from None
        raise exc(f"{path}: {describe_oserror(e)}") from None
    except ValueError as e:  # embedded NUL byte
        raise exc(f"{path}: invalid path ({e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise exc(f"{path}: is a directory, expected {kind}")
    if not stat.S_ISREG(st.st_mode):
        raise exc(f"{path}: not a regular file, expected {kind}")
    if not os.access(path, os.R_OK):
        raise exc(f"{path}: permission denied")
    return st.st_size


def same_file(a: str, b: str) -> bool:
    """True when ``a`` and the existing file ``b`` are one file (same path,
    symbolic or hard link)."""
    try:
        if not os.path.exists(b):
            return False
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_output(out: str, inputs, exc=ValueError) -> None:
    """F2: refuse an output that is one of ``inputs`` ((label, path) pairs),
    or that cannot be created (a directory, or in a missing directory) --
    before the command does any work."""
    d = os.path.dirname(os.path.abspath(out)) or "."
    if os.path.isdir(out):
        raise exc(f"{out}: is a directory")
    if not os.path.isdir(d):
        raise exc(f"{out}: directory {d} does not exist")
    for label, path in inputs:
        if path and same_file(out, path):
            raise exc(f"{out}: output is the same file as the {label} {path}; "
                      f"choose another output name")


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str, write, exc=ValueError) -> None:
    """F3: call ``write(binary file object)`` on a temporary file beside
    ``path`` and rename it onto ``path``."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise exc(f"{path}: is a directory")
    if not os.path.isdir(d):
        raise exc(f"{path}: directory {d} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.", suffix=".part")
    except OSError as e:
        raise exc(f"{path}: cannot write ({describe_oserror(e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp made it 0600
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        raise exc(f"{path}: cannot write ({describe_oserror(e)})") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
