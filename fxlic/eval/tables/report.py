"""The full report, docs/RESULTS.md: the paper's tables regenerated on fxlic's
own models (Summary, Models, the main RD table and BD-rate, the classical
codecs, Tables I, VI, VII, VIII, V, IX and X and what differs from the paper),
its figures and CompressAI-layout JSON."""
from __future__ import annotations

import datetime
import json
import os
import sys

import numpy as np

from .ablations import (section_lin_all, section_table_i, section_v, section_vi, section_vii, section_viii,
                        viii_note)
from .cost import section_ix, section_x
from .files import export_results, figure_md, figures
from .fmt import f
from .models import section_models
from .notes import regenerate_md
from .rd import main_rd, objective, section_bd, section_classical, section_main
from .summary import section_summary


def latent_rule_cells(ctx):
    """Per model: the float model on the ablation images with integer-rounded latents and
    under its integer model's rule (computed)."""
    from ..runner import summarize
    from .records import paired
    cells = []
    for n, _ in ctx.models:
        if ctx.latents(ctx.int_model(n)) == "integer":
            continue
        a, b = paired(ctx.float_recs(n, ctx.abl_images), ctx.own_float_recs(n, ctx.abl_images))
        if not a:
            cells.append(f"{n} pending")
            continue
        sa, sb = summarize(a), summarize(b)
        cells.append(f"{n} {sa['bpp']:.4f} bpp / {sa['psnr']:.3f} dB -> {sb['bpp']:.4f} / {sb['psnr']:.3f}")
    return "; ".join(cells) or "no offset-latent model in this run"


def write_report(ctx, command):
    """Write the full report (--out, docs/RESULTS.md), its figures, CompressAI-layout JSON and
    results.json (--figures); every number from the cache (pending where missing)."""
    rd = main_rd(ctx)
    figs = figures(ctx, rd)
    main_tab, times = section_main(ctx, rd)
    n_main = min([r["n"] for r in rd.values()] or [0])
    K = len(ctx.abl_images)
    ix_tab, ex_bits = section_ix(ctx)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    a = L.append
    a("# fxlic results: the paper's tables regenerated on fxlic's own models\n")
    a(f"Generated {now} by `{command}` (tools/paper_tables.py; every per-image number is cached, "
      f"rerunning it recomputes nothing that is cached). Test set: the {len(ctx.images)} Kodak images; "
      f"ablations (Tables I, VI-VIII, Lin et al.) on the first {K} ({', '.join(os.path.basename(i) for i in ctx.abl_images)}), "
      "as the captions say.\n")
    a("**Read this first.** The paper's models were trained for about 10^6 iterations on ImageNet crops; "
      "fxlic's float models were trained on a CPU budget for far fewer steps on a small training set (each "
      "model's steps and wall time are in the Models table below; docs/TRAINING.md has the data and the stages). "
      "Their absolute rate-distortion performance is far below the paper's (the Summary states the standing "
      "against every classical codec measured); what the tables can compare is the *quantization loss* "
      "(integer vs float of the same weights), which does not require well-trained weights but does depend on "
      "them: badly converged weights and activations have different ranges than the paper's.\n")
    a("Conventions: bpp of the integer models is the size of the real `.fxl` file (header, CRC and both "
      "substreams) over the pixel count; *estimated* bpp is the entropy model's -log2 p of the same symbols "
      "(the counterpart of the float model's ideal bpp, used for the loss tables so the coder's overhead is "
      "not counted as quantization loss). Float models run in float32, the ideal rate -log2 p under their own "
      "float entropy model; wherever a float model is the reference of an integer codec (the Models and RD "
      "rows, the integer-codec columns of Tables VI-VIII) it rounds its latents by the integer model's rule: "
      "for the offset-latent models fxlic builds (SPEC O5) that is CompressAI's inference, "
      "y_hat = mean + round(y - mean) and z_hat = median + round(z - median); the weights-only and "
      "activation-only simulations and their float baseline round y and z to integers (`fxlic.eval.sim`). "
      "PSNR is RGB 8-bit, averaged over images; MS-SSIM is "
      "Wang et al. 2003 on RGB (mean over channels), averaged over images, and MS-SSIM dB = "
      "-10 log10(1 - MS-SSIM). Classical codecs: bpp of the whole file.\n")
    a("## Summary (computed)\n")
    a(section_summary(ctx, rd))
    a("")
    a("## Models\n")
    a(section_models(ctx) if ctx.meta else "No float weights found in the weights directory yet.")
    a("")
    a("Training steps: the model's own run first, then the runs it was started from, as far as the weights "
      "files' provenance records them (a run started from a training checkpoint records that checkpoint's "
      "steps only, not the runs before it; docs/TRAINING.md lists every stage).\n")
    a(f"## Rate-distortion on Kodak ({n_main} images)\n")
    a(main_tab)
    a("")
    if times:
        a(f"Integer codec time per image (numba backend, the {os.cpu_count()}-core machine of this run, "
          "parallel workers): " + "; ".join(times) + ".\n")
    a(figure_md(ctx, figs))
    a("### BD-rate / BD-PSNR (bjontegaard package, piecewise cubic 'pchip' interpolation)\n")
    a("With three hyperprior rate points the test curve is short: BD values are computed over the overlap "
      "of the two curves only (the 'overlap' column); outside it nothing is claimed. The factorized model is a "
      "single point and gets the rate difference at its own quality against the interpolated anchor.\n")
    a(section_bd(ctx, rd))
    a("Reading the table: a negative BD-rate means the integer models need fewer bits than that anchor for the "
      "same quality, a positive one more; the Summary above lists the standing against every anchor.\n")
    a("### Classical codecs (all images)\n")
    if ctx.args.skipped_codecs:
        a(f"Not measured in this run (library not installed): {', '.join(ctx.args.skipped_codecs)}.\n")
    a(section_classical(ctx))
    a("")
    a(f"## Table I: weight quantization schemes (weights only, hp5-mse-q2, first {K} Kodak images)\n")
    a("Weights-only quantization: the float forward with every conv/tconv weight replaced by its dequantized "
      "8-bit value (`QuantizedWeights.dequantize`; plain float weights, without the integer path's AT0/ST3 "
      "prescales); biases and activations float. LW = one scale factor per layer, CW = per output channel; "
      "LQ = Eq 8, NLQ = Eq 14, Lloyd = Eq 11 (layer-wise table). The paper's model is its middle-rate MSE model; "
      "ours is the WCFT export of lambda 0.0075.\n")
    a(section_table_i(ctx))
    a("")
    a("### Lin et al. [58] (Eq 31-34) as an alternative weight quantizer (weights only)\n")
    a("Per output channel: sigma = std(w), xi = alpha sigma, step s = xi x 0.0308 (optimal 8-bit uniform step "
      "of a unit Gaussian), n = -ceil(log2 s); LQ: round(w 2^n) in [-128, 127]; NLQ (Eq 34, alpha 1.5): 64 "
      "levels at 2^-n, 16 at 2^-(n-2), 48 at 2^-(n-3) per sign. Loss vs the float model (dB / bpp):\n")
    a(section_lin_all(ctx))
    a("")
    a("The paper (Fig. 9) reports that Lin et al.'s LQ gives an uneven RD curve across lambda and that its NLQ "
      "variant stays below CW-NLQ with WCFT for every lambda.\n")
    a(f"## Table VI: coding loss of weight (W), activation (A) and W+A quantization (first {K} images)\n")
    a("dPSNR (dB) / dbpp against the float model of the same weights, paired per image (W only and A only "
      "against the float model with integer-rounded latents, as the simulations run; W+A against the float "
      "model under the integer model's latent rule, see Conventions). W only: dequantized "
      "CW-NLQ weights, float activations. A only: float weights, every activation fake-quantized channel-wise "
      "with the calibrated exponents and mux of the integer model (NLQ after ReLU, LQ on the hyper path and HS5, "
      "y_hat - mu and z_hat saturated to 8 bits; `fxlic.eval.sim.forward_codec`). W+A: the real integer codec "
      "(its estimated bpp; the .fxl-file bpp difference is in its own column). Paper values at the same lambda "
      "(hyperprior or factorized, MSE).\n")
    a(section_vi(ctx))
    a("")
    a(f"## Table VII: WCFT gain (first {K} images)\n")
    a("The same training run exported just before the first WCFT round (`*-nowcft`) and after WCFT "
      "fine-tuning. Each loss is against the float model of the same export; the last column is what WCFT "
      "fine-tuning itself did to the float model. A model continued under its WCFT clip "
      "(`--wcft-exponent keep`, docs/TRAINING.md step 13) has those steps on the WCFT side only, so for it the "
      "last column also holds their training (the Models table gives both lineages).\n")
    a(section_vii(ctx))
    a("")
    a(f"## Table VIII: activation LQ vs NLQ with mux (first {K} images)\n")
    a("`build_int_model(act_quant='lq')` puts every main-path activation on the uniform mux-0 codebook; "
      "'nlq-mux' selects one of four NLQ codebooks per channel (Eq 24-27). A-only = activation simulation, "
      "integer codec = real bitstream (estimated bpp), both against the float model.\n")
    a(section_viii(ctx))
    a("")
    a(viii_note(ctx))
    a(f"## Table V: bit-depth of y with and without mean reduction (Kodak, {len(ctx.images)} images)\n")
    a("Bits of the two's-complement range of y_hat per channel over the Kodak images (float forward), and for "
      "the channels the integer model mean-reduces (chosen on the 9 calibration images, Eq 28-30), the range of "
      "y_hat - mu with mu = a x_mean + b computed as the integer codec does (SPEC M2). The paper: the channel "
      "with the large non-zero mean needs 9 bits (10 for its high MS-SSIM lambdas) before and 8 (9) after.\n")
    a(section_v(ctx))
    a("")
    a("Where the table shows no channel above 8 bits, the latents of these briefly trained models are small "
      "(no DC-like channel with a large mean has formed, unlike the paper's channel 135), so the calibration "
      "selects no channel for mean reduction and Eq 28-30 has nothing to do; the mechanism itself is exercised "
      "by the unit tests (tests/test_quant_misc.py) rather than by these models.\n")
    a("## Table IX: memory at 768 x 512 (MB = 10^6 bytes)\n")
    a("Per layer, for any model and image size, with row-streaming line buffers and Table X energy: "
      "`fxlic cost MODEL --size WxH` (docs/COST.md); the counts below are the same functions'.\n")
    a(ix_tab)
    a("")
    a("Counting rules. Encoder = g_a + h_a + h_s (13 layers), decoder = h_s + g_s (10 layers). Weights, "
      "weight scale factors and encoder activations reproduce the paper exactly (every layer's output counted "
      "once, as a layer-by-layer accelerator stores it). **Decoder activations:** counting every decoder layer's "
      "output gives 20,496,384 (20.496 MB); the paper's 20.251 MB is reproduced to the printed digit by leaving "
      "out the outputs of the two h_s transposed convolutions HS0 and HS1 (49,152 + 196,608 = 245,760 values): "
      "20,250,624. The same exclusion does not reproduce the paper's encoder column (19.526 vs 19.771 MB), and "
      "the paper's own fp32 decoder figure 81.99 MB = 4 x 20,496,384 counts *all* outputs, so the 8-bit "
      "decoder entry appears to use a different rule from the rest of the table; fxlic's rule is every "
      "layer's output (20.496 MB), and the rule that matches the printed value is stated above. **Activation "
      "scale factors:** Eq 38 read literally (4-bit sf_o on every output channel except AT3 / ST3, plus a 2-bit "
      "mux on the ReLU channels) gives 0.0014 / 0.0012 MB; the printed 0.0018 / 0.0014 MB are reproduced by "
      "5 bits on every output channel (2,816 and 2,307 channels).\n")
    if ex_bits:
        a("Exponent ranges of fxlic's models (bits a hardware table would need): " + "; ".join(ex_bits) + ".\n")
    a("## Table X: energy per 768 x 512 image from counted operations\n")
    a("The paper's Table X gives energy per operation (45 nm, Horowitz 2014): int8 add 0.03 / mult 0.2 pJ, "
      "int32 add 0.1 / mult 3.1, fp16 add 0.4 / mult 1.1, fp32 add 0.9 / mult 3.7; it prints no per-image "
      "total. Here: every MAC of the layer list (a tconv counted as input positions x k^2 x Cin x Cout) is one "
      "multiply and one add, plus one add per output (bias). Integer: priced as the paper's 8-bit multiply with a "
      "32-bit accumulate. Caveat: fxlic's software engine multiplies the *levels* of the 8-bit codes as int16 "
      "operands (NLQ weight levels reach 504 on a 2^-10 grid); a hardware MAC can use an 8-bit mantissa multiply "
      "plus a shift (docs/SPEC.md, architecture notes), which is what the int8 price assumes. Shifts, table "
      "look-ups, requantization compares and the entropy coder are not priced. Float: both operations in fp32 "
      "(or fp16).\n")
    a(section_x())
    a("")
    a("## What differs from the paper, and why\n")
    fewer = [n for n, r in rd.items() if r["float"] and r["int"] and r["int"].get("est_bpp")
             and r["int"]["est_bpp"] < 0.99 * r["float"]["bpp"]]
    lams = ", ".join(f"{n} (lambda {f(ctx.lam(n), '{:g}')})" for n, _ in ctx.models)
    a("* **Training budget and data.** A CPU budget and a small training set (Models table, docs/TRAINING.md) "
      "instead of 10^6 iterations on ImageNet: fxlic's float models are far from converged, so absolute PSNR / "
      "bpp (and the comparisons with the classical codecs) are not the paper's; the models are "
      f"{lams or 'none yet'}; "
      + (f"{', '.join(n for n, _ in ctx.models if objective(n) == 'msssim')} trained for MS-SSIM "
         "(lambda in the paper's MS-SSIM units), the others for MSE.\n"
         if any(objective(n) == "msssim" for n, _ in ctx.models) else "all MSE-optimized, none for MS-SSIM.\n") +
      "* **Fewer images for the ablations** (first "
      f"{K} Kodak images) because every ablation is a full-resolution float forward in NumPy "
      f"({ablation_cost(ctx)}); the main RD rows use all images.\n"
      "* **Calibration**: 9 CBSD68 images (first in name order, centre crop 512), as the paper's 'nine training "
      "images'.\n"
      "* **Integer models that need fewer bits than their float model** "
      f"({', '.join(fewer) if fewer else 'none in this run'}; more than 1 % below the float rate of the "
      "float model under the same latent rule). On these under-trained models the float entropy model is a "
      "poor fit of its own latents, so a perturbation can lower the rate; the paper's converged models show "
      "small rate *increases*.\n"
      "* **The float reference's latent rule.** Until session 12 every float reference rounded y and z to "
      "integers, while the integer models code round(y - mean) (SPEC O5); the difference of rules was counted "
      f"as quantization loss. The float models under the two rules (first {K} images, integer -> offset "
      f"latents): {latent_rule_cells(ctx)}.\n"
      "* **Quantization losses** depend on how the trained weights and activations are distributed; an "
      "under-trained network has a different dynamic range per channel than the paper's, so the sign and "
      "size of individual entries can differ even where the method is the same.\n")
    a("## Regenerate\n")
    a(regenerate_md(ctx))
    exported = export_results(ctx, rd, ctx.args.figures, per_image=False)
    os.makedirs(os.path.dirname(os.path.abspath(ctx.args.out)), exist_ok=True)
    with open(ctx.args.out, "w") as fh:
        fh.write("\n".join(L) + "\n")
    with open(os.path.join(ctx.args.figures, "results.json"), "w") as fh:
        json.dump({"main": rd, "images": [os.path.basename(i) for i in ctx.images]}, fh, indent=1, default=str)
    print(f"wrote {ctx.args.out}, {len(figs)} figure(s) and {len(exported)} CompressAI-layout JSON file(s) in "
          f"{os.path.join(ctx.args.figures, 'compressai')}", file=sys.stderr)


def ablation_cost(ctx):
    """Measured time of a float forward and of an integer encode + decode (this run's records)."""
    fl, it = [], []
    for n, _ in ctx.models:
        fl += [r["seconds"] for r in ctx.own_float_recs(n, ctx.images) if r and r.get("seconds") is not None]
        it += [r["encode_s"] + r["decode_s"] for r in ctx.int_recs(n, ctx.images) if r and "encode_s" in r]
    if not fl or not it:
        return "timings pending"
    return (f"{np.mean(fl):.1f} s per image here on average, against {np.mean(it):.1f} s for an integer "
            "encode + decode")
