"""The benchmark issue's bar, checked from the records (a section of RESULTS.md, never typed by hand).

Means are over the seeds each record set holds; the full-pool references are ceilings, not baselines.

- ContrastGeo's default (`contrastgeo`) beats every baseline on mean top-1 AND mean median km (both strictly): the
  references without a support set (majority, population prior, zero-shot prompts) and every other few-shot method
  at the same K. At K=16 on every task; at K=4 on 4 tasks of 5 (that share of the tasks, rounded up).
- Against the fine-tuned classifier, top-1 averaged over the tasks: at least +10 points at K <= 4, +5 at K >= 8.
- Stretch: at K=16, top-1 and median at least as good as the frozen full-pool logistic regression on 3 tasks of 5.
"""

import math

from .methods import FEW_SHOT, METHODS, REFERENCE

DEFAULT_METHOD = "contrastgeo"
CLASSIFIER = "classifier"
CEILING = "logreg-full-pool"
# Share of the tasks on which every baseline must be beaten, per K.
SHARE_OF_TASKS_TO_WIN = {16: 1.0, 4: 0.8}
CLASSIFIER_MARGIN_POINTS = {"small": 10.0, "large": 5.0}  # K <= 4, K >= 8
STRETCH_K, STRETCH_TASKS = 16, 3


def _baselines():
    references = [m.name for m in METHODS if m.group == REFERENCE and not m.name.endswith("full-pool")]
    few_shot = [m.name for m in METHODS if m.group == FEW_SHOT and not m.name.startswith(DEFAULT_METHOD)]
    return references, few_shot


def _mean_top1_and_median(summary, key):
    entry = summary.get(key)
    return None if entry is None else (100 * entry["top1"][0], entry["median_km"][0], entry["stale"])


def bar_verdicts(summary, tasks):
    """{"per_task": {(k, task): (default, [failed baseline strings], stale)}, "classifier": {k: (mean gain,
    number of tasks, stale)}, "stretch": (tasks matched, tasks compared, stale)} from an `aggregate` summary."""
    references, few_shot = _baselines()
    shots = sorted({key[2] for key in summary if key[1] == DEFAULT_METHOD and key[2] is not None})
    per_task, classifier = {}, {}
    for k in shots:
        gains, stale_gain = [], False
        for task in tasks:
            default = _mean_top1_and_median(summary, (task, DEFAULT_METHOD, k))
            if default is None:
                continue
            failed, stale = [], default[2]
            compared = [(name, (task, name, None)) for name in references] + \
                       [(name, (task, name, k)) for name in few_shot]
            for name, key in compared:
                baseline = _mean_top1_and_median(summary, key)
                if baseline is None:
                    continue
                stale = stale or baseline[2]
                if not (default[0] > baseline[0] and default[1] < baseline[1]):
                    failed.append(f"{name} {baseline[0]:.1f} / {baseline[1]:.0f}")
            per_task[(k, task)] = (default, failed, stale)
            fine_tuned = _mean_top1_and_median(summary, (task, CLASSIFIER, k))
            if fine_tuned is not None:
                gains.append(default[0] - fine_tuned[0])
                stale_gain = stale_gain or default[2] or fine_tuned[2]
        if gains:
            classifier[k] = (sum(gains) / len(gains), len(gains), stale_gain)
    matched = compared_tasks = 0
    stale_stretch = False
    for task in tasks:
        default = _mean_top1_and_median(summary, (task, DEFAULT_METHOD, STRETCH_K))
        ceiling = _mean_top1_and_median(summary, (task, CEILING, None))
        if default is None or ceiling is None:
            continue
        compared_tasks += 1
        matched += default[0] >= ceiling[0] and default[1] <= ceiling[1]
        stale_stretch = stale_stretch or default[2] or ceiling[2]
    return {"per_task": per_task, "classifier": classifier, "stretch": (matched, compared_tasks, stale_stretch)}


def render_bar(summary, tasks, stale_mark):
    """Markdown lines: the per-task verdicts and each part of the bar, met or not."""
    verdicts = bar_verdicts(summary, tasks)

    def mark(stale):
        return f" {stale_mark}" if stale else ""

    rows = []
    for (k, task), (default, failed, stale) in sorted(verdicts["per_task"].items(), key=lambda item: -item[0][0]):
        rows.append(f"| {k} | {task} | {default[0]:.1f} / {default[1]:.0f}{mark(stale)} | "
                    f"{'yes' if not failed else 'no'} | {'; '.join(failed) or '—'} |")
    lines = [__doc__.split("\n\n", 1)[1].strip(), "",
             "| K | task | contrastgeo top-1 % / median km | beats every baseline | not beaten (top-1 % / median km) |",
             "|---:|---|---:|---|---|", *rows, ""]
    for k, share in sorted(SHARE_OF_TASKS_TO_WIN.items(), reverse=True):
        results = [(failed, stale) for (shots, _), (_, failed, stale) in verdicts["per_task"].items() if shots == k]
        if not results:
            continue
        beaten = sum(not failed for failed, _ in results)
        needed = math.ceil(share * len(tasks) - 1e-9)
        met = beaten >= needed and len(results) == len(tasks)
        lines.append(f"- K={k}: every baseline beaten on {beaten} of {len(results)} task(s) with records "
                     f"(needs {needed} of {len(tasks)}): **{'met' if met else 'not met'}**"
                     f"{mark(any(stale for _, stale in results))}")
    for k, (gain, count, stale) in sorted(verdicts["classifier"].items()):
        needed = CLASSIFIER_MARGIN_POINTS["small" if k <= 4 else "large"]
        met = gain >= needed and count == len(tasks)
        lines.append(f"- K={k}: {gain:+.1f} top-1 points over the classifier, mean of {count} task(s) (needs "
                     f"+{needed:g}): **{'met' if met else 'not met'}**{mark(stale)}")
    matched, compared, stale = verdicts["stretch"]
    if compared:
        lines.append(f"- Stretch, K={STRETCH_K}: matches {CEILING} on {matched} of {compared} task(s) (needs "
                     f"{STRETCH_TASKS}): **{'met' if matched >= STRETCH_TASKS else 'not met'}**{mark(stale)}")
    return lines
