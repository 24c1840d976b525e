"""``fxlic verify --vectors CASE --dumps DIR``: compare a port's per-layer dumps
with a golden case (docs/VECTORS.md); exit status 1 on any mismatch, missing or
malformed dump."""
from __future__ import annotations

from ..errors import CliError


def run(args) -> int:
    from ..vectors.verify import SCOPES, VerifyError, format_report, ok, verify

    layers = None
    if args.layers not in (None, "all"):
        layers = [l.strip() for l in args.layers.split(",") if l.strip()]
    try:
        results, manifest = verify(args.vectors, args.dumps, args.scope, layers, args.strict)
    except VerifyError as e:
        raise CliError(str(e)) from None
    if not results:
        raise CliError(f"nothing to compare in scope {args.scope!r} (scopes: {', '.join(SCOPES)})")
    print(format_report(results, args.scope, verbose=args.verbose))
    good = ok(results)
    print("VERIFY PASSED" if good else "VERIFY FAILED")
    return 0 if good else 1


def register(sub):
    s = sub.add_parser("verify", help="compare a port's dumps with golden test vectors")
    s.add_argument("--vectors", required=True, help="golden case or unit directory (has manifest.json)")
    s.add_argument("--dumps", required=True, help="the port's dumps, same relative layout (.npy or .mem)")
    s.add_argument("--scope", choices=("all", "encoder", "decoder"), default="all",
                   help="which side the port implements (default all): decoder = h_s and g_s layers, "
                        "entropy side and reconstruction; encoder = g_a, h_a, h_s, entropy side, stream")
    s.add_argument("--layers", default="all", help="compare only these layers (comma list)")
    s.add_argument("--strict", action="store_true",
                   help="every tensor of the scope must be dumped (default: only layer outputs and unit "
                        "outputs; the rest is compared when present)")
    s.add_argument("-v", "--verbose", action="store_true", help="also list optional tensors not dumped")
    s.set_defaults(func=run)
