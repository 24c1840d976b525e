"""Rate-distortion figures (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

import os

STYLE = {"int": dict(marker="o", ls="-", lw=2), "float": dict(marker="s", ls="--", lw=1.5),
         "classical": dict(marker=".", ls="-", lw=1)}


def rd_plot(curves: list, path: str, metric: str = "psnr", title: str = "", xlim=None, ylim=None):
    """``curves``: dicts {label, kind (int|float|classical), bpp: [...], q: [...]}.
    ``metric``: 'psnr' (dB) or 'msssim_db' (-10 log10(1 - MS-SSIM))."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 5.2), dpi=110)
    for c in curves:
        if not c["bpp"]:
            continue
        pts = sorted(zip(c["bpp"], c["q"]))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=c["label"],
                **STYLE.get(c.get("kind"), {}), **({"color": c["color"]} if c.get("color") else {}))
    ax.set_xlabel("bits per pixel (Kodak mean)")
    ax.set_ylabel("PSNR (dB, RGB)" if metric == "psnr" else "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)")
    if xlim:
        ax.set_xlim(*xlim)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
