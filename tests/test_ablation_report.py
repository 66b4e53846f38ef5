"""The paired ablation section of RESULTS.md (contrastgeo/benchmarking/ablations.py)."""

import pytest

from contrastgeo.benchmarking.ablations import paired_differences, render_ablations
from contrastgeo.benchmarking.records import record_key

from .test_benchmark_runner import _record


def _records():
    records = []
    for task in ("a", "b"):
        for seed, (top1, median_km) in enumerate([(0.30, 50.0), (0.40, 30.0), (0.50, 10.0)]):
            records.append(_record(task=task, method="contrastgeo", k=4, seed=seed, top1=top1, median_km=median_km))
    # Task a: TLC-only on seeds 0 and 2 only; its own mean (0.35) minus the default's mean over all seeds (0.40)
    # would read -5 points, while on the draws both saw it loses 2.5 points.
    records += [_record(task="a", method="contrastgeo-tlc-only", k=4, seed=0, top1=0.25, median_km=60.0),
                _record(task="a", method="contrastgeo-tlc-only", k=4, seed=2, top1=0.50, median_km=20.0),
                _record(task="b", method="contrastgeo-tlc-only", k=4, seed=1, top1=0.45, median_km=25.0),
                # No default at K=16 and not an ablation: neither is paired.
                _record(task="a", method="contrastgeo-fusion-sum", k=16, seed=0, top1=0.9),
                _record(task="a", method="tfidf-logreg", k=4, seed=0, top1=0.9)]
    return records


def test_differences_are_paired_by_seed():
    differences = paired_differences(_records())
    assert set(differences) == {("contrastgeo-tlc-only", 4, "a"), ("contrastgeo-tlc-only", 4, "b")}
    task_a = differences[("contrastgeo-tlc-only", 4, "a")]
    assert task_a["top1"] == pytest.approx(-2.5) and task_a["median_km"] == pytest.approx(10.0)
    assert task_a["seeds"] == [0, 2] and not task_a["stale"]
    assert differences[("contrastgeo-tlc-only", 4, "b")]["top1"] == pytest.approx(5.0)


def test_rendered_table_marks_stale_pairs_and_summarises_tasks():
    records = _records()
    stale = {record_key(records[0])}  # the default's seed 0 on task a
    lines = render_ablations(records, ["a", "b"], "‡", stale)
    row = next(line for line in lines if line.startswith("| contrastgeo-tlc-only"))
    assert row == "| contrastgeo-tlc-only | -2.5 / +10 (2) ‡ | +5.0 / -5 (1) | +1.2; 1 of 2 |"
    assert "K=4:" in lines and "K=16:" not in lines
    lines = render_ablations(records, ["a", "b", "c"], "‡")
    assert next(line for line in lines if line.startswith("| contrastgeo-tlc-only")).endswith("| — | — |")
    no_pairs = render_ablations(records[:6], ["a", "b"], "‡")
    assert no_pairs == ["No ablation shares a task, K and seed with the default yet."]
