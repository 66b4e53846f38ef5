"""train.py on a user's own files: how the place prior treats region labels and whole-file training
(see contrastgeo/benchmarking/user_files.py).

    python benchmarks/user_files.py --work-dir W                # both checks: 3 + 2 train.py runs, ~40 min on 2 cores
    python benchmarks/user_files.py --work-dir W --checks region-labels --seeds 0

Builds the tasks from the raw data, writes them as CSV files under W, trains each model with train.py as a user
would, and writes benchmarks/RESULTS_user_files.md. A model folder is reused (an interrupted run goes on where it
stopped) only when this script trained it with the same train.py flags on CSV files of the same content (its
`user_files_run.json`); the report lists the commit each model was trained at.
Exit status 1 when train.py's own evaluation of a region-label model and its rescoring here disagree by more than
a post.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

CHECKS = ("region-labels", "whole-file")
WHOLE_FILE_TASKS = ("midwest-2017", "umass-global")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="where the CSV files and the models go")
    parser.add_argument("--checks", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--shots", type=int, default=16, help="region labels: posts per country (train.py --shots)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="region labels: seeds of the few-shot draw")
    parser.add_argument("--pool-share", type=float, default=0.4, help="whole file: share of each task's pool")
    parser.add_argument("--max-train-steps", type=int, default=300, help="whole file: train.py --max-train-steps")
    parser.add_argument("--raw-dir", help="raw public data (default $CONTRASTGEO_RAW_DIR or ../shared/data)")
    parser.add_argument("--report", type=Path, default=REPO_ROOT / "benchmarks" / "RESULTS_user_files.md")
    args = parser.parse_args(argv)
    if args.shots < 1:
        parser.error(f"--shots must be at least 1, got {args.shots}")
    if min(args.seeds) < 0 or len(set(args.seeds)) < len(args.seeds):
        parser.error(f"--seeds must be distinct integers >= 0, got {args.seeds}")
    if not 0 < args.pool_share <= 1:
        parser.error(f"--pool-share must be in (0, 1], got {args.pool_share}")
    if args.max_train_steps < 1:
        parser.error(f"--max-train-steps must be at least 1, got {args.max_train_steps}")
    if args.work_dir.exists() and not args.work_dir.is_dir():
        parser.error(f"--work-dir {args.work_dir} is a file")
    return args


RUN_RECORD = "user_files_run.json"  # what this script trained a model folder with


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _run_record(flags) -> dict:
    """train.py's flags and the content of each file among them (a file rewritten with other posts differs)."""
    flags = [str(flag) for flag in flags]
    return {"flags": flags, "files": {flag: _sha256(flag) for flag in flags if flag.endswith(".csv")}}


def train(model_dir, *flags):
    """Train `model_dir` with train.py, unless this script already trained it with the same flags on the same files
    (an earlier, finished run: its eval_results.json and run record). Returns the folder and the commit the model
    was trained at."""
    from contrastgeo.benchmarking.records import git_commit

    record, record_path = _run_record(flags), model_dir / RUN_RECORD
    saved = json.loads(record_path.read_text()) if record_path.is_file() else None
    finished = (model_dir / "eval_results.json").is_file()
    if not (finished and saved is not None and {key: saved.get(key) for key in record} == record):
        if finished:
            print(f"{model_dir}: trained with other flags or files than this run's, trained again", file=sys.stderr)
        record_path.unlink(missing_ok=True)
        subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *map(str, flags), "--output-dir",
                        str(model_dir), "--overwrite-output-dir"], check=True)
        saved = {**record, "commit": git_commit(REPO_ROOT)}
        record_path.write_text(json.dumps(saved, indent=2) + "\n")
    return model_dir, saved["commit"]


def region_labels(args):
    from contrastgeo.benchmarking.rescoring import rescoring_drifted
    from contrastgeo.benchmarking.runner import load_task_data
    from contrastgeo.benchmarking.user_files import region_labels_section, score_region_priors, write_country_task

    task_dir = args.work_dir / "country"
    pool_path, query_path = write_country_task(load_task_data("vardial-bcms", args.raw_dir), task_dir)
    rows = []
    for seed in args.seeds:
        # Some countries have fewer posts than K: a user's file would too, and train.py takes them whole.
        model_dir, commit = train(task_dir / f"k{args.shots}-seed{seed}", "--train-file", pool_path, "--eval-file",
                                  query_path, "--shots", args.shots, "--seed", seed, "--on-short-class", "all")
        args.trained_at[model_dir.relative_to(args.work_dir).as_posix()] = commit
        rows.append(dict(score_region_priors(model_dir, query_path, pool_path), seed=seed, k=args.shots))
    drifted = [row for row in rows if rescoring_drifted(row["saved_top1"], row["check_top1"], row["num_posts"])]
    for row in drifted:
        print(f"check failed: seed {row['seed']}: eval_results top-1 {row['saved_top1']:.4f}, rescored "
              f"{row['check_top1']:.4f}", file=sys.stderr)
    return region_labels_section(rows), not drifted


def whole_file(args):
    import numpy as np

    from contrastgeo.benchmarking.runner import load_task_data
    from contrastgeo.benchmarking.user_files import read_posts, whole_file_metrics, whole_file_section, \
        write_pool_share_task

    rows = []
    for task in WHOLE_FILE_TASKS:
        task_dir = args.work_dir / f"{task}-share"
        pool_path, query_path, places_path = write_pool_share_task(load_task_data(task, args.raw_dir), task_dir,
                                                                   args.pool_share, seed=0)
        # umass-global's query holds a blank post: a user's file is refused there, so it is skipped (and listed).
        model_dir, commit = train(task_dir / "model", "--train-file", pool_path, "--eval-file", query_path,
                                  "--places-file", places_path, "--max-train-steps", args.max_train_steps,
                                  "--place-prior", "population", "--on-bad-rows", "skip")
        args.trained_at[model_dir.relative_to(args.work_dir).as_posix()] = commit
        _, labels, _ = read_posts(pool_path)
        counts = np.unique(labels, return_counts=True)[1]
        rows.append({"task": task, "metrics": whole_file_metrics(model_dir), "num_train_posts": len(labels),
                     "posts_per_place": f"{counts.min()} to {counts.max()}", "share": args.pool_share, "seed": 0,
                     "max_train_steps": args.max_train_steps})
    return whole_file_section(rows), True


def main(argv=None):
    from contrastgeo.benchmarking.records import git_commit
    from contrastgeo.benchmarking.user_files import user_files_report

    args = parse_args(argv)
    args.trained_at = {}  # model folder (under --work-dir) -> the commit train.py ran at
    results = [{"region-labels": region_labels, "whole-file": whole_file}[check](args) for check in args.checks]
    command = " ".join(sys.argv[1:] if argv is None else argv)
    report = user_files_report([section for section, _ in results], command, git_commit(REPO_ROOT), args.trained_at)
    args.report.write_text(report)
    print(report)
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
