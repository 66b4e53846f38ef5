"""RESULTS.md and HEADLINE.md, rendered from the records of results.json (never edited by hand).

Cells of a (task, method, K) are aggregated over seeds as mean ± sample standard deviation. A run whose planned
grid is not complete is labelled PARTIAL, with the missing cells listed. Records of an earlier configuration (their
config hash is not the current one; the runner passes their keys as `stale_keys`) are shown with STALE_MARK.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np

from datasets_scripts import BENCHMARK_TASKS

from .ablations import render_ablations
from .bar import render_bar
from .methods import ABLATION, FEW_SHOT, FROZEN_FEW_SHOT, METHODS, METHODS_BY_NAME, REFERENCE
from .records import CALIBRATION_FIELDS, record_key

TASK_ORDER = BENCHMARK_TASKS
STALE_MARK = "‡"
STALE_NOTE = (f"{STALE_MARK}: at least one seed's record comes from an earlier configuration of the method (its config "
              "hash is not the current one, or `--invalidate` marked it); `benchmarks/run_benchmark.py` reruns it.")
HEADLINE_K = 16
# Frozen all-MiniLM-L6-v2, mean of 5 seeds, from the benchmark issue: (top-1 %, median km).
ANCHORS = {
    "vardial-ch": {"majority": (6.0, 52.0), "zero-shot": (3.6, 69.9), "best frozen K=16": (6.2, 53.3),
                   "logreg-full-pool": (11.3, 42.8)},
    "vardial-bcms": {"majority": (22.0, 94.3), "zero-shot": (2.0, 202.2), "best frozen K=16": (2.4, 198.2),
                     "logreg-full-pool": (25.0, 78.2)},
    "midwest-2017": {"majority": (21.5, 217.5), "zero-shot": (11.5, 392.6), "best frozen K=16": (3.8, 382.8),
                     "logreg-full-pool": (24.4, 225.3)},
    "midwest-2017-meta": {"majority": (21.5, 217.5), "zero-shot": (36.3, 106.3), "best frozen K=16": (18.5, 177.5),
                          "logreg-full-pool": (44.1, 20.6)},
    "umass-global": {"majority": (29.8, 7510.0), "zero-shot": (23.4, 5322.0), "best frozen K=16": (34.7, 2979.0),
                     "logreg-full-pool": (68.6, 0.0)},
}
# The method each anchor row was measured with. The anchors' zero-shot used the bare place name as the prompt
# (reproduced exactly on vardial-ch), so it is compared with `zero-shot-name`.
ANCHOR_METHODS = {"majority": "majority", "zero-shot": "zero-shot-name", "logreg-full-pool": "logreg-full-pool"}
# Within noise: |top-1 difference| <= max(1 point, 2 std over seeds); |median difference| <= max(10 km, 15 %, 2 std).
ANCHOR_TOP1_POINTS, ANCHOR_MEDIAN_KM, ANCHOR_MEDIAN_RELATIVE = 1.0, 10.0, 0.15
TABLE_METRICS = (("top1", "top-1 %"), ("top5", "top-5 %"), ("macro_acc", "macro %"), ("acc@161km", "acc@161km %"),
                 ("median_km", "median km"), ("mean_km", "mean km"))


def _task_rank(task):
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def _task_order(tasks):
    return sorted(set(tasks), key=_task_rank)


def _method_order(method):
    names = [m.name for m in METHODS]
    return names.index(method) if method in names else len(names)


SUMMARY_FIELDS = ("top1", "top5", "macro_acc", "acc@161km", "median_km", "mean_km", "wall_time_s")


def aggregate(records, fields=SUMMARY_FIELDS, stale_keys=frozenset()):
    """{(task, method, k): {"n", "seeds", "stale", field: (mean, std or None)}} over seeds, for each field in
    `fields`; "stale" when a member's key is in `stale_keys`."""
    groups = defaultdict(list)
    for record in records:
        groups[(record["task"], record["method"], record["k"])].append(record)
    summary = {}
    for key, members in groups.items():
        entry = {"n": len(members), "seeds": sorted(r["seed"] for r in members if r["seed"] is not None),
                 "stale": any(record_key(r) in stale_keys for r in members)}
        for name in fields:
            values = np.array([r[name] for r in members], dtype=np.float64)
            std = float(values.std(ddof=1)) if len(values) > 1 else None
            entry[name] = (float(values.mean()), std)
        summary[key] = entry
    return summary


def _format(value, std, percent):
    scale = 100.0 if percent else 1.0
    digits = 1 if percent or value * scale < 1000 else 0
    text = f"{value * scale:.{digits}f}"
    return text if std is None else f"{text} ± {std * scale:.{digits}f}"


def _metric_cell(entry, name):
    mean, std = entry[name]
    return _format(mean, std, percent=not name.endswith("_km"))


def _table(header, rows):
    alignment = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", alignment]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def best_frozen(summary, task, k=HEADLINE_K):
    """(method, entry) of the frozen-encoder few-shot method with the best mean top-1 at K=k, or None."""
    candidates = [(name, summary[(task, name, k)]) for name in FROZEN_FEW_SHOT if (task, name, k) in summary]
    return max(candidates, key=lambda item: item[1]["top1"][0]) if candidates else None


def anchor_rows(records):
    """Rows (task, row name, measured method, anchor top-1, measured top-1, anchor median, measured median, ok)."""
    summary = aggregate(records)
    rows = []
    for task in _task_order(task for task in {r["task"] for r in records} if task in ANCHORS):
        for row_name, (anchor_top1, anchor_median) in ANCHORS[task].items():
            if row_name == "best frozen K=16":
                found = best_frozen(summary, task)
            else:
                method = ANCHOR_METHODS[row_name]
                found = (method, summary[(task, method, None)]) if (task, method, None) in summary else None
            if found is None:
                rows.append((task, row_name, "not run", anchor_top1, None, anchor_median, None, None))
                continue
            method, entry = found
            (top1, top1_std), (median, median_std) = entry["top1"], entry["median_km"]
            top1_tolerance = max(ANCHOR_TOP1_POINTS, 2 * 100 * (top1_std or 0.0))
            median_tolerance = max(ANCHOR_MEDIAN_KM, ANCHOR_MEDIAN_RELATIVE * anchor_median, 2 * (median_std or 0.0))
            ok = abs(100 * top1 - anchor_top1) <= top1_tolerance and abs(median - anchor_median) <= median_tolerance
            rows.append((task, row_name, method, anchor_top1, 100 * top1, anchor_median, median, ok))
    return rows


def render_anchor_check(records):
    lines = ["Frozen all-MiniLM-L6-v2 rows against the anchors of the benchmark issue (mean of 5 seeds there; of "
             "this run's seeds here). Within noise: top-1 within max(1 point, 2 std over seeds) and median error "
             f"within max({ANCHOR_MEDIAN_KM:g} km, {ANCHOR_MEDIAN_RELATIVE:.0%}, 2 std). \"best frozen K=16\" is the "
             f"better of {' and '.join(FROZEN_FEW_SHOT)} by mean top-1; the anchors' zero-shot prompt is the bare "
             "place name (`zero-shot-name`).", ""]
    rows = []
    for task, row_name, method, anchor_top1, top1, anchor_median, median, ok in anchor_rows(records):
        verdict = "not run" if ok is None else ("ok" if ok else "**OFF**")
        rows.append((task, row_name, method, f"{anchor_top1:.1f}", "—" if top1 is None else f"{top1:.1f}",
                     f"{anchor_median:.1f}", "—" if median is None else f"{median:.1f}", verdict))
    header = ("task", "row", "measured method", "anchor top-1 %", "top-1 %", "anchor median km", "median km", "check")
    return lines + _table(header, rows)


def headline_k(records):
    """K of the headline table: 16 when present, else the largest K among the few-shot records."""
    shots = {r["k"] for r in records if r["k"] is not None and METHODS_BY_NAME.get(r["method"]) and
             METHODS_BY_NAME[r["method"]].group == FEW_SHOT}
    return HEADLINE_K if HEADLINE_K in shots or not shots else max(shots)


def _stale_mark(entry):
    return f" {STALE_MARK}" if entry["stale"] else ""


def render_headline(records, stale_keys=frozenset()):
    """Markdown table: top-1 % (mean ± std over seeds) / median km per task, few-shot methods at the headline K."""
    summary = aggregate(records, stale_keys=stale_keys)
    k = headline_k(records)
    tasks = _task_order(r["task"] for r in records)
    rows, any_stale = [], False
    for method in METHODS:
        if method.group == ABLATION:
            continue
        method_k = None if method.group == REFERENCE else k
        if not any((task, method.name, method_k) in summary for task in tasks):
            continue
        label = method.name if method.group == FEW_SHOT else f"{method.name} (reference)"
        cells = []
        for task in tasks:
            entry = summary.get((task, method.name, method_k))
            cells.append("—" if entry is None else
                         f"{_metric_cell(entry, 'top1')} / {entry['median_km'][0]:.0f} km{_stale_mark(entry)}")
            any_stale = any_stale or (entry is not None and entry["stale"])
        rows.append((label, *cells))
    lines = [f"Top-1 accuracy % (mean ± std over seeds) / median error km; few-shot methods at K={k} posts per "
             "place, references use the whole pool or none. Written by benchmarks/run_benchmark.py.", ""]
    notes = ["", STALE_NOTE] if any_stale else []
    return "\n".join(lines + _table(("method", *tasks), rows) + notes) + "\n"


def _missing_lines(records, planned_cells):
    done = {record_key(record) for record in records}
    missing = [cell for cell in planned_cells if tuple(cell) not in done]
    return missing, _cell_lines(missing)


def _cell_lines(cells):
    """One line per (task, method): how many of `cells` and at which K."""
    grouped = defaultdict(list)
    for task, method, k, seed in cells:
        grouped[(task, method)].append((k, seed))
    lines = []
    for (task, method), members in sorted(grouped.items(), key=lambda item: (item[0][0], _method_order(item[0][1]))):
        shots = sorted({k for k, _ in members if k is not None})
        detail = f"K {', '.join(map(str, shots))}" if shots else "no support set"
        lines.append(f"- {task} / {method}: {len(members)} cell(s) ({detail})")
    return lines


def _task_section(task, summary):
    lines = [f"### {task}", ""]
    for group, title in ((REFERENCE, "References (no support set, or the whole pool)"),
                         (FEW_SHOT, "Few-shot (K posts per place)"), (ABLATION, "Ablations of ContrastGeo")):
        keys = sorted((key for key in summary if key[0] == task and METHODS_BY_NAME.get(key[1]) is not None
                       and METHODS_BY_NAME[key[1]].group == group),
                      key=lambda key: (key[2] or 0, _method_order(key[1])) if group == ABLATION
                      else (_method_order(key[1]), key[2] or 0))
        if group == ABLATION:  # the default, at the ablation K values, is the row to compare against
            ablation_shots = {key[2] for key in keys}
            keys += [(task, "contrastgeo", k) for k in sorted(ablation_shots) if (task, "contrastgeo", k) in summary]
            keys.sort(key=lambda key: (key[2] or 0, _method_order(key[1])))
        if not keys:
            continue
        rows = [(key[1] + _stale_mark(summary[key]), "—" if key[2] is None else key[2], summary[key]["n"],
                 *(_metric_cell(summary[key], name) for name, _ in TABLE_METRICS)) for key in keys]
        lines += [f"{title}:", ""] + _table(("method", "K", "seeds", *(label for _, label in TABLE_METRICS)), rows)
        lines.append("")
    return lines


def _wall_time_lines(records):
    totals = defaultdict(lambda: [0.0, 0])
    for record in records:
        device = (record.get("environment") or {}).get("device", "not recorded")
        entry = totals[(record["task"], record["method"], device)]
        entry[0] += record["wall_time_s"]
        entry[1] += 1
    rows = [(task, method, device, count, f"{total:.1f}", f"{total / count:.1f}")
            for (task, method, device), (total, count) in sorted(totals.items(), key=lambda item: (
                _task_rank(item[0][0]), _method_order(item[0][1]), item[0][2]))]
    return ["Seconds per record exclude the one-time frozen encoding of each task (cached on disk). A trained "
            "method's time is its training plus its evaluation; methods sharing one training run each count it. "
            "Times on one device compare only with others measured there, under the same load.",
            ""] + _table(("task", "method", "device", "records", "total s", "per record s"), rows)


def _calibration_lines(records, stale_keys):
    """Expected calibration error (15 bins, top-1 probability) at temperature 1 and at the saved one, per trained
    method and K, mean ± std over seeds."""
    summary = aggregate([record for record in records if all(name in record for name in CALIBRATION_FIELDS)],
                        fields=CALIBRATION_FIELDS, stale_keys=stale_keys)
    if not summary:
        return ["No record of this run reports calibration yet."]
    rows = []
    for (task, method, k), entry in sorted(summary.items(), key=lambda item: (
            _task_rank(item[0][0]), _method_order(item[0][1]), item[0][2] or 0)):
        cells = [_format(*entry[name], percent)
                 for name, percent in (("ece_uncalibrated", True), ("ece", True), ("probability_temperature", False))]
        rows.append((task, method + _stale_mark(entry), k, entry["n"], *cells))
    return ["Expected calibration error of the top-1 probability on the query posts (15 equal-width bins), with "
            "temperature 1 and with the temperature saved with the model (`--calibration`: 1 by default; records of "
            "an earlier configuration used `heldout`, up to 8 labelled pool posts per place outside the K shots). "
            "With the place prior (ContrastGeo's default) the ECE is that of the probabilities with the prior, and "
            "the temperature also moves the ranking.",
            ""] + _table(
        ("task", "method", "K", "seeds", "ECE % at T=1", "ECE % saved T", "saved T"), rows)


def _environment_lines(records):
    environments = {}
    for record in records:
        environment = record.get("environment") or {}
        environments.setdefault(tuple(sorted(environment.items())), []).append(record)
    lines = []
    for items, members in environments.items():
        described = ", ".join(f"{key} {value}" for key, value in items) or "not recorded"
        lines.append(f"- {len(members)} record(s): {described}")
    return lines


def _same_run_lines(records):
    """One line per (method, method whose training run it shares): records filled from another method's record."""
    shared = defaultdict(int)
    for record in records:
        if record.get("same_run_as"):
            shared[(record["method"], record["same_run_as"])] += 1
    return [f"- {count} record(s) of {method} share the training run and scoring of {other}'s (equal training "
            "hashes), so they hold its metrics" for (method, other), count in sorted(shared.items())]


def render_results(records, planned_cells, mode, stale_keys=frozenset()):
    """RESULTS.md: status, run, anchor check, headline, bar, paired ablations, per-task tables, calibration, wall
    time, methods."""
    summary = aggregate(records, stale_keys=stale_keys)
    missing, missing_lines = _missing_lines(records, planned_cells)
    commits = sorted({record["commit"] for record in records})
    lines = ["# Benchmark results", "",
             "Written by `benchmarks/run_benchmark.py` from `results.json`; do not edit by hand. Protocol: "
             "DESIGN.md §4. Metrics are means ± sample std over seeds of the few-shot draw.", ""]
    if missing:
        lines += [f"**PARTIAL**: {len(planned_cells) - len(missing)} of {len(planned_cells)} cells of the `{mode}` "
                  "grid are done. Missing:", "", *missing_lines, ""]
    else:
        lines += [f"Complete: all {len(planned_cells)} cells of the `{mode}` grid are done.", ""]
    stale = sorted(set(stale_keys) & {tuple(cell) for cell in planned_cells}, key=str)
    if stale:
        lines += [f"{STALE_MARK} {len(stale)} of the done cells come from an earlier configuration of their method "
                  "(their config hash is not the current one, or `--invalidate` marked them) and are shown with the "
                  "mark until a run replaces them:", "", *_cell_lines(stale), ""]
    reasons = {}
    for record in records:
        if record.get("invalidated"):
            reasons.setdefault(record["invalidated"], []).append(record_key(record))
    lines += [f"Invalidated by `--invalidate` ({len(keys)} record(s)): {reason}"
              for reason, keys in sorted(reasons.items())]
    lines += [""] if reasons else []
    encoders = sorted({record.get("encoder", "not recorded") for record in records})
    lines += ["## Run", "", f"- git commit(s): {', '.join(commits) or 'none'}",
              f"- encoder(s): {', '.join(encoders)}", f"- records: {len(records)}", *_same_run_lines(records),
              "- environment:",
              *_environment_lines(records), ""]
    lines += ["## Check against the anchors", "", *render_anchor_check(records), ""]
    lines += ["## Headline", "", render_headline(records, stale_keys)]
    tasks = _task_order(record["task"] for record in records)
    lines += ["## The bar", "", *render_bar(summary, tasks, STALE_MARK), ""]
    lines += ["## Ablations, paired with the default", "",
              *render_ablations(records, tasks, STALE_MARK, stale_keys), ""]
    lines += ["## Per task", ""]
    for task in tasks:
        lines += _task_section(task, summary)
    lines += ["## Calibration", "", *_calibration_lines(records, stale_keys), ""]
    lines += ["## Wall time", "", *_wall_time_lines(records), ""]
    lines += ["## Methods", ""]
    lines += [f"- `{method.name}` ({method.group}): {method.description}" for method in METHODS]
    return "\n".join(lines) + "\n"


def readme_headline_markers(mode):
    """The README lines that enclose the headline table of a benchmark mode."""
    return (f"<!-- {mode} benchmark headline: written by `python benchmarks/run_benchmark.py --mode {mode} "
            "--report-only --write-readme README.md` from its results.json -->",
            f"<!-- end of {mode} benchmark headline -->")


def write_readme_headline(records, readme_path, mode, stale_keys=frozenset()):
    """Replace the README's headline block of `mode` with `render_headline(records, stale_keys)`."""
    from datasets_scripts.common import replace_between_markers

    readme_path = Path(readme_path)
    text = readme_path.read_text(encoding="utf-8")
    headline = render_headline(records, stale_keys)
    readme_path.write_text(replace_between_markers(text, *readme_headline_markers(mode), headline), encoding="utf-8")
    return readme_path


def report_paths(results_dir):
    """RESULTS.md and HEADLINE.md in `results_dir`, the files `write_reports` writes."""
    return Path(results_dir) / "RESULTS.md", Path(results_dir) / "HEADLINE.md"


def write_reports(records, results_dir, planned_cells, mode, stale_keys=frozenset()):
    """Write RESULTS.md and HEADLINE.md into `results_dir`; returns their paths."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    paths = report_paths(results_dir)
    paths[0].write_text(render_results(records, planned_cells, mode, stale_keys), encoding="utf-8")
    paths[1].write_text(render_headline(records, stale_keys), encoding="utf-8")
    return paths
