"""tools/paper_tables.py: the training-step lineage read from a weights file's provenance."""
from tool_loader import load_tool

lineage_steps = load_tool("paper_tables").lineage_steps


def test_checkpoint_parent_gives_its_step_count():
    pv = {"train_steps": 1200, "steps": 1450, "init_from": {"init_steps": 8509, "init_args": {"steps": 40000}}}
    assert lineage_steps(pv) == [1200, 8509]


def test_exported_parents_are_walked():
    grand = {"train_steps": 800, "steps": 800, "init_from": {"init_steps": 8509, "init_args": {"steps": 40000}}}
    pv = {"train_steps": 5200, "init_from": {"init_steps": 800, "init_args": grand}}
    assert lineage_steps(pv) == [5200, 800, 8509]


def test_no_provenance():
    assert lineage_steps({}) == []
    assert lineage_steps({"steps": 10}) == [10]


def test_a_keep_continuation_counts_its_steps_under_the_clip():
    wcft_only = {"train_steps": 0, "steps": 400, "init_from": {"init_args": {"train_steps": 4090, "steps": 4263}}}
    keep = {"train_steps": 0, "steps": 600, "wcft_exponent": "keep", "init_from": {"init_args": wcft_only}}
    assert lineage_steps(keep) == [600, 0, 4090]
