"""External models of the committed suite (docs/VECTORS.md 6, "External models").

A shipped N = 128 model directory is about 7 MB of ``.npy`` files, the same
integers as its ``fxlic/zoo/NAME.fxq``.  The suite keeps one (the default
model's, ``vectors/models/hp5-mse-q2``); every other shipped model's case has
no model directory (``model.dir`` null, ``model_dir -`` in ``case.txt``) and
names its model file instead:

* the case manifest's ``model.external`` and the suite manifest's
  ``models[NAME].external``: ``{"zoo": NAME, "path": "fxlic/zoo/NAME.fxq",
  "sha256": <hex of the file>, "bytes": <size>, "id": <the 16-byte stream model
  id, 32 hex digits>}`` (the model's content hash is ``model.hash`` as for every
  case);
* ``case.txt``: ``model_name``, ``model_file``, ``model_sha256`` and
  ``model_hash`` lines after ``model_dir -`` (``case_text_lines``).

``resolve`` finds such a file (``fxlic/zoo/`` of the installed fxlic, or the
directory given with ``--zoo``) and checks its size and sha256: ``fxlic vectors
--check`` and ``fxlic verify`` both do it, so a case can never be checked
against another model file.  ``write_model_dir_of`` writes the model directory
of any ``.fxq`` (``fxlic vectors --model NAME --model-only --out DIR``); the
generator writes ``vectors/models/<default model>`` with the same function, so
an exported directory is byte for byte what the suite would hold.
"""
from __future__ import annotations

import os
import re

from .check import IntegrityError, file_sha256

#: repository path of the shipped models (what ``external.path`` names)
ZOO_PREFIX = "fxlic/zoo/"
PATH_RE = re.compile(r"^fxlic/zoo/[A-Za-z0-9][A-Za-z0-9._-]*\.fxq$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[0-9a-f]{32}$")
#: the options of a shipped model's directory in the suite: every array as .npy,
#: the per-channel parameters also as .mem (docs/VECTORS.md 3)
SUITE_MEM = frozenset({"params"})
#: the regeneration hint of every mismatch
REGEN = "regenerate the vectors: python tools/gen_vectors.py"

_digests = {}


def file_digest(path: str):
    """(sha256 hex, bytes) of a file (check.file_sha256), remembered while the
    file is unchanged (a suite names each external model in several manifests)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = (file_sha256(path), st.st_size)
    return _digests[key]


def zoo_dir() -> str:
    """fxlic/zoo of the installed fxlic (the repository's in a checkout)."""
    from ..io.modelfile import ZOO_DIR

    return ZOO_DIR


def source_path(path: str, name: str) -> str:
    """How a model directory names the .fxq it was written from: the repository
    path ``fxlic/zoo/NAME.fxq`` for a shipped model, else the file's name (never a
    machine's absolute path: the directory stays byte-identical everywhere)."""
    zd = os.path.realpath(zoo_dir())
    if os.path.dirname(os.path.realpath(path)) == zd:
        return ZOO_PREFIX + os.path.basename(path)
    return os.path.basename(path)


def external_entry(model, path: str, name: str) -> dict:
    """``model.external`` of a case (and ``models[NAME].external`` of the suite) for
    the shipped model ``name`` read from ``path``."""
    from ..io.modelfile import model_hash

    digest, size = file_digest(path)
    return {"zoo": name, "path": ZOO_PREFIX + name + ".fxq", "sha256": digest, "bytes": size,
            "id": model_hash(model).split(":")[-1][:32]}


def case_text_lines(info: dict, model_hash: str) -> list:
    """The ``case.txt`` lines of an external model (after ``model_dir -``)."""
    return [f"model_name {info['zoo']}", f"model_file {info['path']}", f"model_sha256 {info['sha256']}",
            f"model_hash {model_hash}"]


def validate(info, where: str) -> None:
    """The structure of an ``external`` entry (IntegrityError: malformed manifest)."""
    def bad(what):
        raise IntegrityError(f"{where}: malformed manifest (model.external {what})")

    if not isinstance(info, dict):
        bad("is not an object")
    if not isinstance(info.get("path"), str) or not PATH_RE.match(info["path"]):
        bad(f"path {info.get('path')!r} is not fxlic/zoo/NAME.fxq")
    if not isinstance(info.get("zoo"), str) or info["path"] != ZOO_PREFIX + info["zoo"] + ".fxq":
        bad(f"zoo {info.get('zoo')!r} does not name the file {info['path']}")
    if not isinstance(info.get("sha256"), str) or not _SHA.match(info["sha256"]):
        bad("needs sha256 (64 hex digits)")
    if not isinstance(info.get("bytes"), int) or isinstance(info["bytes"], bool) or info["bytes"] < 0:
        bad("needs bytes")
    if "id" in info and (not isinstance(info["id"], str) or not _ID.match(info["id"])):
        bad("id must be 32 hex digits")


def resolve(info: dict, where: str, zoo: str = None) -> str:
    """The file of an external model: ``zoo`` (default: the installed fxlic's
    fxlic/zoo) / NAME.fxq, with the recorded size and sha256; IntegrityError
    (one line) when it is missing or another file."""
    validate(info, where)
    d = zoo or zoo_dir()
    p = os.path.join(d, os.path.basename(info["path"]))
    label = f"{where}: external model {info['path']} (sha256 {info['sha256'][:12]}...)"
    if not os.path.isfile(p):
        raise IntegrityError(f"{label}: {p} not found (the case has no model directory; give the directory "
                             f"that holds {os.path.basename(p)} with --zoo DIR)")
    try:
        digest, size = file_digest(p)
    except OSError as e:
        raise IntegrityError(f"{label}: {p}: {e.strerror}") from None
    if digest != info["sha256"] or size != info["bytes"]:
        raise IntegrityError(f"{label}: {p} has sha256 {digest[:12]}...: another model file ({REGEN})")
    return p


def write_model_dir_of(model, path: str, root: str, name: str, opts=None, **kw) -> dict:
    """The model directory (docs/VECTORS.md 3) of the model read from ``path``,
    as the suite writes it for a shipped model: ``source`` and ``fxq`` (path,
    sha256, bytes of the file) in its manifest, no copy of the .fxq.  ``opts``:
    writer.Options (default: the suite's, .npy + .mem of the parameters)."""
    from .writer import Options, write_model_dir

    opts = opts or Options(mem=SUITE_MEM)
    src = source_path(path, name)
    digest, size = file_digest(path)
    return write_model_dir(model, root, opts, name,
                           extra={"source": src, "fxq": {"path": src, "sha256": digest, "bytes": size}}, **kw)
