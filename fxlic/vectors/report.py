"""Machine-readable reports of ``fxlic verify`` (docs/VECTORS.md 5): JSON,
JUnit XML (one testcase per tensor), mismatch masks (.npy) and a
self-contained HTML page with a per-layer mismatch heat map."""
from __future__ import annotations

import base64
import html
import io
import json
import os
import xml.etree.ElementTree as ET

import numpy as np

from .memfmt import npy_bytes
from .results import FAIL, MALFORMED, MISSING, PASS, SKIPPED
from .textreport import detail_lines, ok, summarize

REPORT_FORMAT = "fxlic-verify-report"
REPORT_VERSION = 1


def _meta(manifest: dict, meta: dict) -> dict:
    case = {"kind": manifest.get("kind")}
    if manifest.get("kind") == "case":
        case["model"] = {k: manifest["model"].get(k) for k in ("name", "hash", "architecture")}
        case["image"] = {k: manifest["image"].get(k) for k in ("name", "width", "height")}
    else:
        case["unit"] = manifest.get("unit")
    return {**meta, "case": case}


def json_report(results, manifest: dict, meta: dict) -> dict:
    """meta: vectors, dumps, scope, strict, layers, max_mismatches."""
    s = summarize(results)
    return {"format": REPORT_FORMAT, "format_version": REPORT_VERSION, **_meta(manifest, meta),
            "passed": ok(results),
            "summary": {"pass": s[PASS], "fail": s[FAIL], "missing": s[MISSING], "malformed": s[MALFORMED],
                        "skipped": s[SKIPPED]},
            "results": [r.as_dict() for r in results]}


def json_bytes(report: dict) -> bytes:
    return (json.dumps(report, indent=1, sort_keys=True) + "\n").encode("utf-8")


def junit_xml(results, manifest: dict, meta: dict) -> bytes:
    """JUnit XML: one <testsuite>, one <testcase> per compared tensor or byte
    file (classname ``fxlic.verify.<group>``, name = the tensor); FAIL and
    MISSING are <failure>, MALFORMED is <error>, optional tensors not dumped
    are <skipped>."""
    s = summarize(results)
    total = sum(r.seconds for r in results)
    m = _meta(manifest, meta)
    suite_name = f"fxlic verify {meta.get('vectors')} (scope {meta.get('scope')})"
    root = ET.Element("testsuites", name="fxlic verify", tests=str(len(results)),
                      failures=str(s[FAIL] + s[MISSING]), errors=str(s[MALFORMED]),
                      skipped=str(s[SKIPPED]), time=f"{total:.3f}")
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(results)),
                          failures=str(s[FAIL] + s[MISSING]), errors=str(s[MALFORMED]),
                          skipped=str(s[SKIPPED]), time=f"{total:.3f}")
    props = ET.SubElement(suite, "properties")
    for k in ("vectors", "dumps", "scope", "strict", "layers"):
        ET.SubElement(props, "property", name=k, value=str(m.get(k)))
    if m["case"].get("model"):
        ET.SubElement(props, "property", name="model_hash", value=str(m["case"]["model"].get("hash")))
    for r in results:
        tc = ET.SubElement(suite, "testcase", classname=f"fxlic.verify.{r.group}", name=r.name,
                           time=f"{r.seconds:.3f}")
        body = "\n".join([r.message] + detail_lines(r, meta.get("max_mismatches", 10)))
        if r.status in (FAIL, MISSING):
            el = ET.SubElement(tc, "failure", type=r.status, message=r.message)
            el.text = body
        elif r.status == MALFORMED:
            el = ET.SubElement(tc, "error", type=r.status, message=r.message)
            el.text = body
        elif r.status == SKIPPED:
            ET.SubElement(tc, "skipped", message=r.message)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def write_masks(results, out_dir: str) -> list:
    """``OUT/<tensor>.mask.npy`` (uint8, the golden shape, 1 where the dump
    differs) for every failing tensor; returns the paths written."""
    paths = []
    for r in results:
        if r.status == FAIL and r.kind == "tensor" and r.mask is not None:
            p = os.path.join(out_dir, *(r.name + ".mask.npy").split("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(npy_bytes(np.ascontiguousarray(r.mask, np.uint8)))
            paths.append(p)
    return paths


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

def _heatmap_png(r) -> bytes:
    """Mismatches per position summed over the channel axis (and per channel)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    mask = np.asarray(r.mask, np.int64)
    if mask.ndim == 3:
        heat, label = mask.sum(axis=0), "differing channels per position (y, x)"
    elif mask.ndim == 2:
        heat, label = mask, f"differing elements ({' x '.join(r.axes or ['d0', 'd1'])})"
    elif mask.ndim == 4:
        heat, label = mask.sum(axis=(2, 3)), "differing taps per (out channel, in channel)"
    else:
        heat, label = mask.reshape(1, -1), "differing elements"
    per = None
    if r.per_channel and mask.ndim >= 2:
        per = np.zeros(mask.shape[0], np.int64)
        for c, n in r.per_channel.items():
            per[c] = n
    fig = Figure(figsize=(8.5 if per is not None else 5.5, 3.4), dpi=80)
    ax = fig.add_subplot(1, 2, 1) if per is not None else fig.add_subplot(1, 1, 1)
    im = ax.imshow(heat, cmap="inferno", interpolation="nearest", aspect="auto", vmin=0)
    ax.set_title(label, fontsize=9)
    if mask.ndim == 3:
        ax.set_xlabel("x", fontsize=8)
        ax.set_ylabel("y", fontsize=8)
    fig.colorbar(im, ax=ax)
    if per is not None:
        bx = fig.add_subplot(1, 2, 2)
        bx.bar(np.arange(per.size), per, color="#c0392b")
        bx.set_title("differing elements per channel", fontsize=9)
        bx.set_xlabel("channel", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}
.PASS{background:#e6f4ea}.FAIL{background:#fbe3e3}.MISSING{background:#fff2cc}
.MALFORMED{background:#fde0c5}.SKIPPED{color:#888}pre{margin:0;font-size:12px;white-space:pre-wrap}
h2{margin-top:1.4em}"""


def html_report(results, manifest: dict, meta: dict) -> str:
    """A self-contained page: summary, a table of every tensor, and per failing
    layer the heat maps (matplotlib, embedded as base64 PNG).  Needs the
    mismatch masks (verify(..., keep_masks=True))."""
    e = html.escape
    s = summarize(results)
    m = _meta(manifest, meta)
    verdict = "VERIFY PASSED" if ok(results) else "VERIFY FAILED"
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>fxlic verify: {e(str(meta.get('vectors')))}</title><style>{_CSS}</style></head><body>",
           f"<h1 id=\"verdict\" class=\"{'PASS' if ok(results) else 'FAIL'}\">{verdict}</h1>",
           "<p>" + "<br>".join(f"<b>{e(k)}</b>: {e(str(m.get(k)))}"
                               for k in ("vectors", "dumps", "scope", "strict", "layers")) + "</p>"]
    if m["case"].get("model"):
        out.append(f"<p>model {e(str(m['case']['model'].get('name')))} "
                   f"<code>{e(str(m['case']['model'].get('hash')))}</code>, image "
                   f"{e(str(m['case']['image'].get('name')))} {m['case']['image'].get('width')}x"
                   f"{m['case']['image'].get('height')}</p>")
    out.append(f"<p id=\"summary\">{s[PASS]} pass, {s[FAIL]} fail, {s[MISSING]} missing, "
               f"{s[MALFORMED]} malformed, {s[SKIPPED]} optional not dumped</p>")
    out.append("<table id=\"results\"><tr><th>group</th><th>tensor</th><th>status</th><th>elements</th>"
               "<th>mismatches</th><th>max |diff|</th><th>message</th></tr>")
    for r in results:
        det = "\n".join(detail_lines(r, meta.get("max_mismatches", 10)))
        out.append(f"<tr class=\"{r.status}\"><td>{e(r.group)}</td><td>{e(r.name)}</td><td>{r.status}</td>"
                   f"<td>{r.elements}</td><td>{r.mismatches}</td>"
                   f"<td>{'' if r.max_abs_diff is None else r.max_abs_diff}</td>"
                   f"<td><pre>{e(r.message)}{(chr(10) + e(det)) if det else ''}</pre></td></tr>")
    out.append("</table>")
    groups = []
    for r in results:
        if r.status == FAIL and r.kind == "tensor" and r.mask is not None and r.group not in groups:
            groups.append(r.group)
    if groups:
        out.append("<h2>Mismatch heat maps</h2>")
    for g in groups:
        out.append(f"<h3 id=\"layer-{e(g)}\">{e(g)}</h3>")
        for r in results:
            if r.group == g and r.status == FAIL and r.kind == "tensor" and r.mask is not None:
                png = base64.b64encode(_heatmap_png(r)).decode("ascii")
                out.append(f"<figure><img alt=\"mismatch heat map of {e(r.name)}\" "
                           f"src=\"data:image/png;base64,{png}\"><figcaption>{e(r.name)}: {r.mismatches} of "
                           f"{r.elements} elements differ, max |diff| {r.max_abs_diff}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
