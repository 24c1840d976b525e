"""Numbers printed in the paper (Sun, Yu, Katto, "End-to-End Learned Image
Compression with Quantized Weights and Activations"), as citations: each
constant names its table.  Nothing in fxlic is tuned to them; the reports
print them beside fxlic's own measurements.

The paper's rate-distortion curves (Figs. 7 and 8) are printed only as
figures; the only absolute rate-distortion points in its text are those of
Tables I and II (Kodak, its "moderate rate" MSE hyperprior model), so those
are the only published points fxlic's plots can overlay.
"""

#: Table I (Kodak, moderate-rate MSE hyperprior): (PSNR dB, bpp) of the float
#: model ("Origin") and of its weights quantized layer-wise (LW) or
#: channel-wise (CW) with LQ, NLQ or Lloyd; activations float
TABLE_I = {"origin": (32.32, 0.529), "lw-lq": (28.81, 0.770), "lw-nlq": (32.08, 0.555),
           "lloyd": (32.18, 0.537), "cw-lq": (31.60, 0.569), "cw-nlq": (32.25, 0.539)}

#: the MSE lambdas of Tables VI-VIII
LAMBDAS = [0.001625, 0.00325, 0.0075, 0.015, 0.03, 0.05]
#: Table VI, MSE columns: (dPSNR dB per lambda, dbpp per lambda) vs the float
#: model, weights only (w), activations only (a), both (wa)
TABLE_VI_HYPER = {"w": ([-0.009, -0.031, -0.043, -0.068, -0.142, -0.147], [0.001, 0.001, 0.006, 0.002, 0.004, 0.006]),
                  "a": ([-0.020, -0.006, -0.028, -0.025, -0.053, -0.077], [0.002, 0.001, 0.003, 0.010, 0.012, 0.010]),
                  "wa": ([-0.031, -0.037, -0.070, -0.091, -0.198, -0.222],
                         [0.003, 0.002, 0.009, 0.010, 0.018, 0.015])}
TABLE_VI_FACT = {"w": ([-0.014, -0.017, -0.084, -0.071, -0.152, -0.166], [0.0001, 0.004, 0.005, 0.003, 0.002, 0.002]),
                 "a": ([-0.007, -0.009, -0.015, -0.020, -0.040, -0.061],
                       [0.0001, 0.0001, 0.0004, 0.001, 0.001, 0.001]),
                 "wa": ([-0.020, -0.025, -0.098, -0.091, -0.194, -0.224],
                        [0.0002, 0.004, 0.005, 0.004, 0.003, 0.003])}
#: Table VII, MSE columns, "W/o WCFT" rows (weights only, without WCFT)
TABLE_VII_HYPER_WO = ([-0.030, -0.039, -0.231, -0.280, -0.429, -0.625], [0.001, 0.005, 0.008, 0.009, 0.028, 0.021])
TABLE_VII_FACT_WO = ([-0.012, -0.119, -0.279, -0.145, -0.485, -0.716], [0.000, 0.001, 0.001, 0.006, 0.012, 0.010])
#: Table VIII, MSE columns, "W/o NLQ" rows (activations only, LQ)
TABLE_VIII_HYPER_LQ = ([-0.019, -0.009, -0.042, -0.051, -0.131, -0.161], [0.002, 0.001, 0.003, 0.011, 0.015, 0.013])
TABLE_VIII_FACT_LQ = ([-0.008, -0.014, -0.031, -0.037, -0.082, -0.142], [0.0001, 0.0002, 0.001, 0.001, 0.002, 0.002])

#: published points for the rate-distortion plots: (label, metric, bpp, value)
RD_POINTS = [
    ("paper, Table I: float32 hyperprior ('Origin')", "psnr", TABLE_I["origin"][1], TABLE_I["origin"][0]),
    ("paper, Table I: CW-NLQ 8-bit weights", "psnr", TABLE_I["cw-nlq"][1], TABLE_I["cw-nlq"][0]),
]
RD_POINTS_CAPTION = {
    "psnr": "Stars: the paper's published points (Sun, Yu, Katto, Table I, Kodak 24 images, its moderate-rate "
            "MSE hyperprior trained ~10^6 steps on ImageNet): float32 0.529 bpp / 32.32 dB, 8-bit CW-NLQ "
            "weights 0.539 / 32.25. Its Figs. 7-8 curves are not printed as numbers.",
    "msssim_db": "The paper prints no absolute MS-SSIM value in its text (Fig. 8 is a figure only), so no "
                 "published point is overlaid here.",
}


def rd_points(metric: str) -> list:
    """Curves (kind 'paper') of the published points for ``metric``."""
    return [{"label": lab, "kind": "paper", "bpp": [b], "q": [v]} for lab, m, b, v in RD_POINTS if m == metric]
