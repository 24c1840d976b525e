"""``fxlic verify --vectors CASE --dumps DIR``: compare a port's per-layer dumps
with a golden case (docs/VECTORS.md 5); exit status 1 on any mismatch, missing
or malformed dump, and on a golden directory that is not intact (a file that
does not match its sha256 in the manifest, a malformed manifest, an external
model's .fxq that is missing or not the file the case names)."""
from __future__ import annotations

import os

from ..errors import CliError


def _write(path: str, data: bytes, what: str):
    from .common import write_atomic

    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise CliError(f"{what} {path}: cannot create {d} ({e.strerror})") from None
    write_atomic(path, data)


def run(args) -> int:
    from ..vectors.verify import SCOPES, VerifyError, format_report, ok, verify

    layers = None
    if args.layers not in (None, "all"):
        layers = [l.strip() for l in args.layers.split(",") if l.strip()]
    if args.max_mismatches < 0:
        raise CliError("--max-mismatches must be >= 0")
    want_masks = bool(args.mask_dir or args.html)
    try:
        results, manifest = verify(args.vectors, args.dumps, args.scope, layers, args.strict,
                                   max_mismatches=args.max_mismatches, keep_masks=want_masks, zoo=args.zoo)
    except VerifyError as e:
        raise CliError(str(e)) from None
    if not results:
        raise CliError(f"nothing to compare in scope {args.scope!r} (scopes: {', '.join(SCOPES)})")
    print(format_report(results, args.scope, verbose=args.verbose, max_mismatches=args.max_mismatches))
    good = ok(results)
    meta = {"vectors": args.vectors, "dumps": args.dumps, "scope": args.scope, "strict": bool(args.strict),
            "layers": layers, "max_mismatches": args.max_mismatches}
    if args.json or args.junit or args.mask_dir or args.html:
        from ..vectors import report

        if args.json:
            _write(args.json, report.json_bytes(report.json_report(results, manifest, meta)), "--json")
        if args.junit:
            _write(args.junit, report.junit_xml(results, manifest, meta), "--junit")
        if args.mask_dir:
            try:
                paths = report.write_masks(results, args.mask_dir)
            except OSError as e:
                raise CliError(f"--mask-dir {args.mask_dir}: {e.strerror}") from None
            if paths:
                print(f"mismatch masks: {len(paths)} files under {args.mask_dir}")
        if args.html:
            _write(args.html, report.html_report(results, manifest, meta).encode("utf-8"), "--html")
    print("VERIFY PASSED" if good else "VERIFY FAILED")
    return 0 if good else 1


def register(sub):
    s = sub.add_parser(
        "verify", help="compare a port's dumps with golden test vectors",
        description="Compare a port's dumps (.npy / .mem, and stream.fxl / entropy/*.rans byte files) with "
                    "a golden case or unit directory, element for element (docs/VECTORS.md 5). The golden "
                    "directory is checked first: every file against its sha256 in the manifest. Exit "
                    "status 0 only if everything compared is equal and nothing required is missing.")
    s.add_argument("--vectors", required=True, help="golden case or unit directory (has manifest.json)")
    s.add_argument("--dumps", required=True, help="the port's dumps, same relative layout (.npy or .mem)")
    s.add_argument("--scope", choices=("all", "encoder", "decoder"), default="all",
                   help="which side the port implements (default all): decoder = h_s and g_s layers, "
                        "entropy side and reconstruction; encoder = g_a, h_a, h_s, entropy side, stream "
                        "(stream.fxl and entropy/z.rans, y.rans compared byte for byte)")
    s.add_argument("--layers", default="all", help="compare only these layers (comma list)")
    s.add_argument("--strict", action="store_true",
                   help="every tensor of the scope must be dumped (default: only layer outputs and unit "
                        "outputs; the rest is compared when present)")
    s.add_argument("--max-mismatches", type=int, default=10, metavar="N",
                   help="list up to N mismatching elements (position, expected, got, diff) per failing "
                        "tensor (default 10; 0: only the first, in the FAIL line)")
    s.add_argument("--json", metavar="FILE", help="also write a JSON report (docs/VECTORS.md 5)")
    s.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report: one testcase per tensor")
    s.add_argument("--mask-dir", metavar="DIR",
                   help="write DIR/<tensor>.mask.npy (uint8, 1 where the dump differs) for each failing tensor")
    s.add_argument("--html", metavar="FILE",
                   help="also write a self-contained HTML report with per-layer mismatch heat maps")
    s.add_argument("--zoo", metavar="DIR",
                   help="where the .fxq of an external-model case (model.external, docs/VECTORS.md 6) is looked "
                        "up (default: fxlic/zoo of this fxlic); its size and sha256 must match the case")
    s.add_argument("-v", "--verbose", action="store_true", help="also list optional tensors not dumped")
    s.set_defaults(func=run)
