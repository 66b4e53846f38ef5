"""The bar section of RESULTS.md (contrastgeo/benchmarking/bar.py): verdicts computed from records."""

import pytest

from contrastgeo.benchmarking.bar import bar_verdicts, render_bar
from contrastgeo.benchmarking.report import aggregate

from .test_benchmark_runner import _record


def _records(tasks=("won", "lost")):
    """On a "won..." task ContrastGeo beats everything at K=4 and K=16; on a "lost..." task majority keeps the better
    median at K=16 and the classifier equals ContrastGeo's top-1 at K=4."""
    records = []
    for task in tasks:
        records += [_record(task=task, method="majority", top1=0.20, median_km=100.0),
                    _record(task=task, method="zero-shot", top1=0.10, median_km=300.0),
                    _record(task=task, method="logreg-full-pool", top1=0.40, median_km=10.0)]
        for seed in (0, 1):
            records += [_record(task=task, method="contrastgeo", k=16, seed=seed, top1=0.30 + 0.02 * seed,
                                median_km=50.0 if task.startswith("won") else 120.0),
                        _record(task=task, method="classifier", k=16, seed=seed, top1=0.22, median_km=200.0),
                        _record(task=task, method="contrastgeo", k=4, seed=seed, top1=0.25, median_km=60.0),
                        _record(task=task, method="classifier", k=4, seed=seed,
                                top1=0.10 if task.startswith("won") else 0.25, median_km=250.0)]
    return records


def test_each_task_names_the_baselines_it_does_not_beat_and_each_part_is_judged():
    summary = aggregate(_records())
    verdicts = bar_verdicts(summary, ["won", "lost"])
    assert verdicts["per_task"][(16, "won")][1] == []
    assert verdicts["per_task"][(16, "lost")][1] == ["majority 20.0 / 100"]  # top-1 31 > 20 but median 120 > 100
    assert verdicts["per_task"][(4, "lost")][1] == ["classifier 25.0 / 250"]  # equal top-1 is not beating
    assert verdicts["classifier"][16] == (pytest.approx(31.0 - 22.0), 2, False)
    assert verdicts["classifier"][4] == (pytest.approx((15.0 + 0.0) / 2), 2, False)
    assert verdicts["stretch"] == (0, 2, False)

    lines = "\n".join(render_bar(summary, ["won", "lost"], "‡"))
    assert "- K=16: every baseline beaten on 1 of 2 task(s) with records (needs 2 of 2): **not met**" in lines
    assert "- K=4: every baseline beaten on 1 of 2 task(s) with records (needs 2 of 2): **not met**" in lines
    assert "- K=4: +7.5 top-1 points over the classifier, mean of 2 task(s) (needs +10): **not met**" in lines
    assert "- K=16: +9.0 top-1 points over the classifier, mean of 2 task(s) (needs +5): **met**" in lines
    assert "| 16 | lost | 31.0 / 120 | no | majority 20.0 / 100 |" in lines and "‡" not in lines


def test_records_of_an_earlier_configuration_mark_the_verdicts_they_enter():
    records = _records()
    summary = aggregate(records, stale_keys={("lost", "classifier", 4, 1)})
    lines = render_bar(summary, ["won", "lost"], "‡")
    assert "| 4 | lost | 25.0 / 60 ‡ | no | classifier 25.0 / 250 |" in lines
    assert any(line.startswith("- K=4: +7.5 top-1 points") and line.endswith("‡") for line in lines)
    assert any(line.startswith("- K=16: +9.0 top-1 points") and not line.endswith("‡") for line in lines)


def test_k4_needs_four_tasks_of_five():
    tasks = ["won1", "won2", "won3", "won4", "lost"]
    lines = render_bar(aggregate(_records(tasks)), tasks, "‡")
    assert "- K=4: every baseline beaten on 4 of 5 task(s) with records (needs 4 of 5): **met**" in lines
    assert "- K=16: every baseline beaten on 4 of 5 task(s) with records (needs 5 of 5): **not met**" in lines
