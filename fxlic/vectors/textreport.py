"""The text report of ``fxlic verify``: one line per layer or group (PASS, or
each problem with indented details), the summary counts and the overall
verdict.  JSON, JUnit and HTML reports are report.py."""
from __future__ import annotations

from .results import AXIS_NAMES, DEFAULT_MAX_MISMATCHES, FAIL, MALFORMED, MISSING, PASS, SKIPPED, STATUSES, TensorResult


def summarize(results) -> dict:
    """{status: how many results have it}."""
    out = {s: 0 for s in STATUSES}
    for r in results:
        out[r.status] += 1
    return out


def _channels_line(r: TensorResult, limit: int = 32) -> str:
    items = sorted(r.per_channel.items())
    ax = AXIS_NAMES.get((r.axes or ["C"])[0], "channel")
    text = " ".join(f"{c}:{n}" for c, n in items[:limit])
    if len(items) > limit:
        text += f" ... ({len(items) - limit} more)"
    return f"mismatches per {ax} ({len(items)} of {r.shape[0]} {ax}s): {text}"


def detail_lines(r: TensorResult, max_mismatches: int = DEFAULT_MAX_MISMATCHES) -> list:
    """The indented lines under a FAIL line: per-channel counts, the listed
    mismatches, notes."""
    out = []
    if r.status == FAIL and r.kind == "tensor":
        if r.per_channel:
            out.append(_channels_line(r))
        for it in r.listed[:max_mismatches]:
            out.append(f"{it['at']}: expected {it['expected']}, got {it['got']} (diff {it['diff']:+d})")
        if r.mismatches > min(len(r.listed), max_mismatches) and max_mismatches:
            out.append(f"... {r.mismatches - min(len(r.listed), max_mismatches)} more "
                       f"(--max-mismatches N lists more)")
    out += r.details
    return out


def format_report(results, scope: str, verbose: bool = False,
                  max_mismatches: int = DEFAULT_MAX_MISMATCHES) -> str:
    """One line per group (layer): PASS, or each problem (FAIL lines followed
    by indented details); a summary line."""
    lines = []
    groups = []
    by = {}
    for r in results:
        if r.group not in by:
            by[r.group] = []
            groups.append(r.group)
        by[r.group].append(r)
    pad = " " * 19
    for g in groups:
        rs = by[g]
        bad = [r for r in rs if r.status in (FAIL, MISSING, MALFORMED)]
        checked = [r for r in rs if r.status == PASS]
        if bad:
            for r in bad:
                lines.append(f"{r.status:<9} {g:<8} {r.message}")
                lines += [pad + d for d in detail_lines(r, max_mismatches)]
        elif checked:
            names = " ".join(r.name.split("/")[-1] for r in checked)
            n = sum(r.elements for r in checked if r.kind == "tensor")
            b = sum(r.elements for r in checked if r.kind == "bytes")
            what = ", ".join(([f"{n} elements"] if n or not b else []) + ([f"{b} bytes"] if b else []))
            lines.append(f"{PASS:<9} {g:<8} {names} ({what})")
        if verbose:
            for r in rs:
                if r.status == SKIPPED:
                    lines.append(f"{'skipped':<9} {g:<8} {r.name}: {r.message}")
    s = summarize(results)
    lines.append(f"verify (scope {scope}): {s[PASS]} tensors pass, {s[FAIL]} fail, {s[MISSING]} missing, "
                 f"{s[MALFORMED]} malformed, {s[SKIPPED]} optional not dumped")
    return "\n".join(lines)


def ok(results) -> bool:
    """True when nothing fails, is missing or malformed, and something passed."""
    s = summarize(results)
    return s[FAIL] == 0 and s[MISSING] == 0 and s[MALFORMED] == 0 and s[PASS] > 0
