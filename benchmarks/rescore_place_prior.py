"""Score saved benchmark models with several place-prior weights (see contrastgeo/benchmarking/rescoring.py).

    python benchmarks/run_benchmark.py --only-methods contrastgeo --shots 16 --seeds 0 --keep-models --work-dir W
    python benchmarks/rescore_place_prior.py W/runs/*/*-k16-seed0 --weights 0 0.5 1 1.5 2

Prints a markdown table (top-1 % / median km per weight, one line per model, then the sum of top-1 over the models;
a last column for the weight fitted on the query posts without their labels, `rescoring.fit_prior_weight`) and, with
--output, writes the metrics as JSON (also at temperature 1); --report writes the table, and the one at temperature
1, as markdown. Exit status 1 when a model's rescoring at its own weight does not give the top-1 of its
eval_results.json (the task was rebuilt differently, or the scoring drifted from train.py's).
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

DEFAULT_WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dirs", nargs="+", type=Path, help="model folders saved by train.py")
    parser.add_argument("--weights", nargs="+", type=float, default=DEFAULT_WEIGHTS,
                        help="place-prior exponents to score (0 = no prior)")
    parser.add_argument("--raw-dir", help="raw public data (default $CONTRASTGEO_RAW_DIR or ../shared/data)")
    parser.add_argument("--output", type=Path, help="also write the metrics here (JSON)")
    parser.add_argument("--report", type=Path,
                        help="also write the table here (markdown, with the commit and the models)")
    args = parser.parse_args(argv)
    # Checked before any task is loaded or model scored, which can take minutes.
    from modeling_contrastgeo.place_prior import check_prior_weight

    for weight in args.weights:
        try:
            check_prior_weight(weight)
        except ValueError as error:
            parser.error(f"--weights: {error}")
    for model_dir in args.model_dirs:
        if not model_dir.is_dir():
            parser.error(f"{model_dir}: no such folder")
    for flag in ("output", "report"):
        path = getattr(args, flag)
        if path is not None and not path.parent.is_dir():
            parser.error(f"--{flag} {path}: the folder {path.parent} does not exist")
    return args


def main(argv=None):
    from contrastgeo.benchmarking.rescoring import (rescore_place_prior, rescoring_drifted, rescoring_report,
                                                    rescoring_table, training_cell)
    from contrastgeo.benchmarking.runner import load_task_data

    args = parse_args(argv)
    tasks, rows = {}, []
    for model_dir in args.model_dirs:
        task = training_cell(model_dir)[0]
        if task not in tasks:
            tasks[task] = load_task_data(task, args.raw_dir)
        rows.append(rescore_place_prior(model_dir, args.weights, tasks[task]))
    print(rescoring_table(rows, args.weights))
    if args.report:
        args.report.write_text(rescoring_report(rows, args.weights, " ".join(sys.argv[1:] if argv is None else argv)))
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    failures = [row for row in rows if rescoring_drifted(row["saved_top1"], row["rescored_top1"],
                                                        row["metrics"][args.weights[0]]["num_examples"])]
    for row in failures:
        print(f"check failed: {row['model_dir']} reports top-1 {row['saved_top1']:.4f} at weight "
              f"{row['saved_weight']:g}, rescored {row['rescored_top1']:.4f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
