"""The ablation runners: every evaluation the report needs, step by step, each
step's tasks in one pool (``Ctx.planning`` + ``Ctx.flush``), integer models
quantized first where missing.  ``compute_all`` is the full report (the main
RD rows and the paper's Tables I, VI, VII, VIII and Lin et al.; Table V needs
no run of its own), ``compute_quick`` the headline tables of --quick."""
from __future__ import annotations

from .context import LIN_VARIANTS, TABLE_I_VARIANTS


def compute_all(ctx):
    """Everything the full report needs (docs/RESULTS.md), step by step: the main RD rows
    and the ablations of Tables VI, VIII, VII and I (with Lin et al.) on the ablation
    images, then the classical codecs; integer models quantized first where missing."""
    names = [n for n, _ in ctx.models if n in ctx.weights]
    imgs, abl = ctx.images, ctx.abl_images
    ctx.planning = True
    # P1 integer models of the shipped configuration
    ctx.build([(n, False, [("cw-nlq", "nlq-mux", True)]) for n in names])
    # P2 RD on the ablation images, P3 Table VI (weights only, activations only), P2b RD on all images
    for n in names:
        ctx.float_recs(n, abl)
        ctx.own_float_recs(n, abl)
        ctx.int_recs(n, abl)
    ctx.flush("RD (ablation images)")
    for n in names:
        ctx.float_recs(n, abl, wq="cw-nlq")
        ctx.float_recs(n, abl, act=ctx.act_model(n))
    ctx.flush("Table VI (W only, A only)")
    for n in names:
        ctx.own_float_recs(n, imgs)
        ctx.int_recs(n, imgs)
    ctx.flush("RD (all images)")
    # P4 Table VIII: activation LQ (integer model and activation-only simulation)
    ctx.build([(n, False, [("cw-nlq", "lq", True)]) for n in names])
    for n in names:
        ctx.float_recs(n, abl, act=ctx.act_model(n, "lq"))
        ctx.own_float_recs(n, abl, act="lq")
        ctx.int_recs(n, abl, act="lq")
    ctx.flush("Table VIII (activation LQ)")
    # P5 Table VII: models without WCFT
    ctx.build([(n, True, [("cw-nlq", "nlq-mux", True)]) for n in names if n in ctx.nowcft])
    for n in names:
        if n in ctx.nowcft:
            ctx.float_recs(n, abl, nowcft=True)
            ctx.float_recs(n, abl, wq="cw-nlq", nowcft=True)
            ctx.own_float_recs(n, abl, nowcft=True)
            ctx.int_recs(n, abl, nowcft=True)
    ctx.flush("Table VII (no WCFT)")
    # P6 Table I and Lin et al. on the middle model
    mid = "hp5-mse-q2" if "hp5-mse-q2" in ctx.weights else None
    if mid:
        for v in TABLE_I_VARIANTS + LIN_VARIANTS:
            ctx.float_recs(mid, abl, wq=v)
        if mid in ctx.nowcft:
            for v in TABLE_I_VARIANTS + LIN_VARIANTS:
                ctx.float_recs(mid, abl, wq=v, nowcft=True)
        ctx.flush("Table I, Lin et al.")
    # P7 classical anchors (fast; last so the models' results come first)
    for c in ctx.args.codecs:
        ctx.classical(c, imgs)
    ctx.flush("classical codecs")
    ctx.planning = False


def compute_quick(ctx):
    """Every task of the headline tables in one pool and one progress bar."""
    ctx.planning = True
    for n, _ in ctx.models:
        ctx.own_float_recs(n, ctx.images)
        ctx.int_recs(n, ctx.images)
    for c in ctx.args.codecs:
        ctx.classical(c, ctx.images)
    ctx.flush(f"quick: {len(ctx.images)} Kodak image(s)")
    ctx.planning = False


def build_specs(ctx):
    """The integer models compute_all builds: [(name, nowcft, variants)]."""
    names = [n for n, _ in ctx.models if n in ctx.weights]
    return [(n, False, [("cw-nlq", "nlq-mux", True), ("cw-nlq", "lq", True)]) for n in names] + \
        [(n, True, [("cw-nlq", "nlq-mux", True)]) for n in names if n in ctx.nowcft]
