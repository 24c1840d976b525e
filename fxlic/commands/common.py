"""Helpers shared by the CLI commands: model resolution (through the Python
API, fxlic/api.py), input checks and atomic output files (rules F1-F3 of
fxlic.io.files)."""
from __future__ import annotations

from ..api import DEFAULT_MODEL  # noqa: F401  (the model used when none is named)
from ..errors import CliError


def load_codec_arg(arg):
    """A shipped model name or a .fxq path (default: DEFAULT_MODEL) -> fxlic.api.Model."""
    from ..api import NoShippedModel, load
    from ..io.modelfile import ModelFileError

    try:
        return load(arg)
    except NoShippedModel:
        raise CliError("no shipped model is installed; pass --model PATH.fxq") from None
    except ModelFileError as e:
        raise CliError(str(e)) from None


def load_model_arg(arg):
    """A shipped model name or a .fxq path (default: DEFAULT_MODEL) -> IntModel."""
    return load_codec_arg(arg).int_model


def find_model_for_stream(stream):
    """The shipped fxlic.api.Model whose id matches the stream header (a
    Header, or the stream's bytes), or None."""
    from ..api import find_model
    from ..bitstream.container import BitstreamError

    try:
        return find_model(stream)
    except BitstreamError as e:
        raise CliError(str(e)) from None


def check_input_arg(path: str, kind: str = "a file") -> int:
    """Rule F1 of fxlic.io.files as a CliError; returns the file size."""
    from ..io.files import check_input

    return check_input(path, CliError, kind)


def read_input_file(path: str, max_bytes: int = 1 << 30) -> bytes:
    size = check_input_arg(path)
    if size > max_bytes:
        raise CliError(f"{path}: {size} bytes is larger than any fxlic stream")
    try:
        with open(path, "rb") as f:
            return f.read(max_bytes + 1)
    except OSError as e:
        raise CliError(f"{path}: {e.strerror}") from None


def check_output_arg(path: str, inputs) -> None:
    """Rule F2 of fxlic.io.files: ``-o`` must not name any of ``inputs``
    ((label, path) pairs), by path, symbolic link or hard link."""
    from ..io.files import check_output

    check_output(path, inputs, CliError)


def write_atomic(path: str, data: bytes, inputs=()):
    """Rules F2-F3 of fxlic.io.files: never onto an input; the whole file
    appears (mode 0666 minus the umask) or nothing does."""
    from ..io.files import atomic_write

    check_output_arg(path, inputs)
    atomic_write(path, lambda f: f.write(data), CliError)


def png_bytes(pixels) -> bytes:
    import io

    from ..io.images import save_png

    buf = io.BytesIO()
    save_png(pixels, buf)
    return buf.getvalue()


def write_png_atomic(path: str, pixels, inputs=()):
    """``write_atomic(path, png_bytes(pixels), inputs)`` with the PNG encoded
    straight into the temporary file (no whole-image copies in memory)."""
    from ..io.files import atomic_write
    from ..io.images import save_png

    check_output_arg(path, inputs)
    atomic_write(path, lambda f: save_png(pixels, f), CliError)


def read_image_arg(path: str):
    from ..io.images import read_image

    try:
        return read_image(path)
    except (ValueError, OSError) as e:
        raise CliError(str(e)) from None


class LayerProgress:
    """A progress bar for large images: advanced per layer (hook) or, when the
    codec runs in bands, per band of output rows (``band``)."""
    wants_acc = False

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        self.enabled = enabled
        self.desc = desc
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="layer", leave=False)

    def __call__(self, name, inp, acc, out):
        if self.bar is not None:
            self.bar.update(1)

    def band(self, rows: int, total: int):
        if not self.enabled:
            return
        if self.bar is None or self.bar.unit != "row":
            from tqdm import tqdm
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=total, desc=self.desc, unit="row", leave=False)
        self.bar.update(rows)

    def close(self):
        if self.bar is not None:
            self.bar.close()
