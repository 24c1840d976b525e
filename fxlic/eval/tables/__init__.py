"""The paper's tables regenerated on fxlic's models (docs/RESULTS.md), the logic
behind tools/paper_tables.py, which is its command line.

  context    the models evaluated and ``Ctx``, through which every table gets its records
  plan       the ablation runners: what the full report and --quick evaluate, step by step
  records    pairing per-image records, the loss of a test run against a base run
  rd         main RD table, RD curves, BD-rate / BD-quality (fxlic.eval.bd), classical codecs
  summary    the computed Summary
  ablations  Tables I (and Lin et al.), V, VI, VII, VIII against the paper's values
  cost       Tables IX (memory) and X (energy)
  models     the Models table (training lineage from the weights' provenance)
  files      RD figures, CompressAI-layout JSON, per-image CSV
  notes      the Regenerate section and the run note
  report     the full report (docs/RESULTS.md)
  quick      the --quick report
  fmt        markdown formatting
"""
