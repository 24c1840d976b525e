"""Rate-distortion figures (matplotlib, Agg backend, PNG).

Every curve gets its own colour *and* marker (colour-blind and greyscale
readers can still tell them apart): fixed ones for fxlic's integer and float
models and for each classical codec, so the same curve looks the same in
every figure, and unused ones for anything else.  Published points (kind
``paper``) are drawn as large stars without a line.
"""
from __future__ import annotations

import os
import textwrap

#: fixed styles; keys: (kind, architecture kind) for fxlic curves, the codec name
#: for classical ones, "paper" for published points
STYLES = {
    ("int", "hyperprior"): dict(color="#d62728", marker="o", ls="-", lw=2.4, ms=7),
    ("float", "hyperprior"): dict(color="#9467bd", marker="s", ls="--", lw=1.6, ms=6),
    ("int", "factorized"): dict(color="#8c564b", marker="D", ls="-", lw=2.0, ms=7),
    ("float", "factorized"): dict(color="#e377c2", marker="d", ls="--", lw=1.5, ms=7),
    "jpeg": dict(color="#1f77b4", marker="v", ls="-", lw=1.2, ms=5),
    "jpeg444": dict(color="#17becf", marker="1", ls="-", lw=1.2, ms=7),
    "jpeg2000": dict(color="#2ca02c", marker="^", ls="-", lw=1.2, ms=5),
    "webp": dict(color="#ff7f0e", marker="<", ls="-", lw=1.2, ms=5),
    "avif": dict(color="#7f7f7f", marker=">", ls="-", lw=1.2, ms=5),
    "jpegxl": dict(color="#bcbd22", marker="p", ls="-", lw=1.2, ms=5),
    "hevc": dict(color="#000000", marker="X", ls="-", lw=1.4, ms=6),
    "paper": dict(marker="*", ls="none", ms=15, mec="black", mew=0.8),
}
#: for curves without a fixed style, and for successive published points
SPARE = [("#393b79", "P"), ("#aec7e8", "h"), ("#98df8a", "8"), ("#ffbb78", "H"), ("#c5b0d5", "x"),
         ("#c49c94", "+")]
PAPER_COLORS = ["#ffd700", "#00e5ff", "#7cfc00", "#ff69b4"]


def style_of(c: dict) -> tuple:
    """The style key of a curve dict (see STYLES), or None."""
    kind = c.get("kind")
    if kind == "classical":
        return c.get("codec")
    if kind in ("int", "float"):
        arch = c.get("arch_kind") or ("factorized" if "factorized" in c.get("label", "") else "hyperprior")
        return (kind, arch)
    if kind == "paper":
        return "paper"
    return None


def curve_styles(curves: list) -> list:
    """A matplotlib style dict per curve, no two curves alike."""
    out, used, spare, paper = [], set(), list(SPARE), 0
    for c in curves:
        key = style_of(c)
        st = dict(STYLES.get(key, {}))
        if key == "paper":
            st["color"] = PAPER_COLORS[paper % len(PAPER_COLORS)]
            paper += 1
        elif not st or (st.get("color"), st.get("marker")) in used:
            col, mk = spare.pop(0) if spare else ("#333333", ".")
            st.update(color=col, marker=mk, ls=st.get("ls", "-"), lw=st.get("lw", 1.2), ms=st.get("ms", 6))
        used.add((st.get("color"), st.get("marker")))
        out.append(st)
    return out


def rd_plot(curves: list, path: str, metric: str = "psnr", title: str = "", xlim=None, ylim=None,
            caption: str = None):
    """``curves``: dicts {label, kind (int|float|classical|paper), bpp: [...], q: [...], codec?}.
    ``metric``: 'psnr' (dB) or 'msssim_db' (-10 log10(1 - MS-SSIM)); ``caption``
    is printed under the axes (sources of published points)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 5.6 if caption else 5.2), dpi=110)
    drawn = [c for c in curves if c["bpp"]]
    for c, st in zip(drawn, curve_styles(drawn)):
        pts = sorted(zip(c["bpp"], c["q"]))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=c["label"], **st,
                zorder=5 if c.get("kind") == "paper" else (4 if c.get("kind") == "int" else 3))
    ax.set_xlabel("bits per pixel (mean over the images)")
    ax.set_ylabel("PSNR (dB, RGB)" if metric == "psnr" else "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)")
    if xlim:
        ax.set_xlim(*xlim)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if caption:
        fig.text(0.01, 0.01, "\n".join(textwrap.wrap(caption, 170)), fontsize=7, va="bottom", ha="left")
    fig.tight_layout(rect=(0, 0.07 if caption else 0, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
