"""Evaluation (issue 9): rate-distortion of fxlic's integer and float models and
of classical codecs on Kodak, BD-rate, the paper's ablation tables.

Float code throughout: this package measures the codec, it is never part of
the integer path.  Optional dependencies (the ``eval`` extra): matplotlib,
imagecodecs, pillow-heif, bjontegaard.

  cache     json records keyed by model content hash + image + settings
  codecs    classical codecs (Pillow JPEG, imagecodecs, pillow-heif HEVC)
  runner    per-image evaluation of every kind of codec, with the cache
  sim       quantization simulations (weights only, activations only, Lin et al.)
  bd        BD-rate / BD-PSNR through the ``bjontegaard`` package, point-vs-curve deltas
  counts    Table IX memory and Table X energy as paper_tables reports them
  cost      per-layer MACs, memory, line buffers, energy for any model and size (fxlic cost)
  export    per-image CSV and CompressAI eval_model JSON
  paper     the paper's printed numbers (citations)
  plots     rate-distortion figures (matplotlib, Agg), distinct colour + marker per curve
  tables    the paper's tables and the report of tools/paper_tables.py (docs/RESULTS.md)
"""
