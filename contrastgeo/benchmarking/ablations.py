"""ContrastGeo's ablations beside its default, paired by seed (a section of RESULTS.md, never typed by hand).

A seed fixes the draw of shots, so an ablation and the default are compared on the seeds both have records for:
the per-task table of RESULTS.md averages each method over its own seeds, which mixes the draws when an ablation
has fewer seeds than the default. Each cell is the mean over those seeds of (ablation - default), in top-1 points
and in median km: a positive top-1 and a negative km difference favour the ablation.
"""

from collections import defaultdict

import numpy as np

from .bar import DEFAULT_METHOD
from .methods import ABLATION, METHODS
from .records import record_key

ABLATION_NOTE = ("Ablation minus default on the same task, K and seeds: top-1 points / median km (number of seeds "
                 "paired). Positive top-1 and negative km favour the ablation. When every task has a pair, the last "
                 "column gives the mean top-1 difference over the tasks (median km differ in scale from task to "
                 "task, so they are not averaged) and on how many tasks the ablation's median is lower.")


def paired_differences(records, stale_keys=frozenset()):
    """{(method, k, task): {"top1": points, "median_km": km, "seeds": [...], "stale": bool}}: the mean over the
    seeds both an ablation and the default hold of (ablation - default); "stale" when a record of either side
    comes from an earlier configuration."""
    ablations = {method.name for method in METHODS if method.group == ABLATION}
    by_key = {record_key(record): record for record in records}
    pairs = defaultdict(list)
    for (task, method, k, seed), record in by_key.items():
        default = by_key.get((task, DEFAULT_METHOD, k, seed))
        if method in ablations and default is not None:
            pairs[(method, k, task)].append((seed, record, default))
    differences = {}
    for key, members in pairs.items():
        differences[key] = {
            "top1": float(np.mean([100 * (record["top1"] - default["top1"]) for _, record, default in members])),
            "median_km": float(np.mean([record["median_km"] - default["median_km"]
                                        for _, record, default in members])),
            "seeds": sorted(seed for seed, _, _ in members),
            "stale": any(record_key(side) in stale_keys
                         for _, record, default in members for side in (record, default)),
        }
    return differences


def _cell(difference, stale_mark):
    mark = f" {stale_mark}" if difference["stale"] else ""
    return f"{difference['top1']:+.1f} / {round(difference['median_km']):+d} ({len(difference['seeds'])}){mark}"


def render_ablations(records, tasks, stale_mark, stale_keys=frozenset()):
    """Markdown lines: one table per K, a row per ablation, a column per task (cells: mean paired difference and,
    in brackets, the number of seeds), then the mean over the tasks."""
    differences = paired_differences(records, stale_keys)
    if not differences:
        return ["No ablation shares a task, K and seed with the default yet."]
    lines = [ABLATION_NOTE, ""]
    for k in sorted({key[1] for key in differences}):
        rows = []
        for method in (m.name for m in METHODS if m.group == ABLATION):
            cells = [differences.get((method, k, task)) for task in tasks]
            if not any(cells):
                continue
            summary = "—"
            if all(cells):
                lower_medians = sum(round(cell["median_km"]) < 0 for cell in cells)  # as the cells show them
                summary = f"{np.mean([cell['top1'] for cell in cells]):+.1f}; {lower_medians} of {len(cells)}"
            rows.append([method, *("—" if cell is None else _cell(cell, stale_mark) for cell in cells), summary])
        lines += [f"K={k}:", "", "| ablation | " + " | ".join(tasks) + " | mean top-1; tasks with a lower median |",
                  "|---|" + "---:|" * (len(tasks) + 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return lines[:-1]
