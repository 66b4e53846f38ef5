"""The benchmark's command line: its modes (the grids) and options (`python benchmarks/run_benchmark.py --help`)."""

import argparse
from pathlib import Path

from datasets_scripts import BENCHMARK_TASKS

from .methods import ABLATION, METHODS

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLIC_TASKS = BENCHMARK_TASKS
MODES = {
    # Fast mode adds the TLM re-ranking ablation: it re-scores the default model, so it costs no training run.
    "fast": {"tasks": ("vardial-ch",), "shots": (4, 16), "seeds": (0, 1),
             "methods": tuple(m.name for m in METHODS if m.group != ABLATION) + ("contrastgeo-rerank",)},
    "standard": {"tasks": PUBLIC_TASKS, "shots": (1, 4, 16), "seeds": (0, 1, 2),
                 "methods": tuple(m.name for m in METHODS)},
    "full": {"tasks": PUBLIC_TASKS, "shots": (1, 2, 4, 8, 16), "seeds": (0, 1, 2, 3, 4),
             "methods": tuple(m.name for m in METHODS)},
}


def _key_value(text):
    import json

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def build_parser():
    parser = argparse.ArgumentParser(description="Run the ContrastGeo benchmark (DESIGN.md §4); resumable.")
    parser.add_argument("--mode", choices=tuple(MODES), default="standard")
    parser.add_argument("--tasks", nargs="+", help="tasks to run (default: the mode's)")
    parser.add_argument("--shots", nargs="+", type=int, help="K values (default: the mode's)")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds of the K-shot draw (default: the mode's)")
    parser.add_argument("--only-methods", nargs="+", help="run only these methods (see --list-methods)")
    parser.add_argument("--skip-methods", nargs="+", default=[], help="do not run these methods")
    parser.add_argument("--results-dir", help="where results.json, RESULTS.md, HEADLINE.md go "
                        "(default benchmarks/, or benchmarks/fast/ in fast mode)")
    parser.add_argument("--raw-dir", help="raw public data (default $CONTRASTGEO_RAW_DIR or ../shared/data)")
    parser.add_argument("--encoder", help="text encoder of every method (default all-MiniLM-L6-v2)")
    parser.add_argument("--embedding-cache-dir", help="cache of frozen embeddings "
                        "(default $CONTRASTGEO_EMBEDDING_CACHE or ~/.cache/contrastgeo/embeddings)")
    parser.add_argument("--work-dir", default=str(REPO_ROOT / "runs" / "benchmark"),
                        help="task copies, CSP model and trained models of the trained methods")
    parser.add_argument("--train-flag", nargs="+", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="extra train.py flag for every trained method (e.g. max_train_steps=50); hashed")
    parser.add_argument("--csp-flag", nargs="+", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="extra train.py flag of the CSP pre-training run")
    parser.add_argument("--keep-models", action="store_true", help="keep trained model folders in --work-dir")
    parser.add_argument("--workers", type=int, default=1,
                        help="run the trained cells in this many processes at once (worth it on a GPU, which one "
                        "small-batch run leaves mostly idle); 1 runs them in this process")
    parser.add_argument("--force", action="store_true",
                        help="recompute the selected cells even when results.json has them with the current hash")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing cell")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (done / to do) and stop")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite RESULTS.md and HEADLINE.md from results.json and stop (runs nothing)")
    parser.add_argument("--write-readme", metavar="README", help="also put the headline table into this README "
                        "(between its benchmark headline markers) whenever the reports are written")
    parser.add_argument("--merge-results", nargs="+", metavar="RESULTS_JSON",
                        help="add the records of these results.json files (a grid split over machines or parallel "
                        "runs) to --results-dir's results.json, replacing the same cells; rewrite the reports and stop")
    parser.add_argument("--invalidate", metavar="REASON",
                        help="mark the records of the selected cells (--tasks, --only-methods, --shots, --seeds) as "
                        "no longer what the code gives, for a change their config hash cannot see (a bug fix in "
                        "the code a method runs): they are reported as stale, with REASON, until a run replaces "
                        "them; rewrite the reports and stop")
    parser.add_argument("--list-methods", action="store_true", help="print the methods and stop")
    return parser


def results_dir_of(options):
    """--results-dir, else benchmarks/ (benchmarks/fast/ in fast mode)."""
    default_dir = REPO_ROOT / "benchmarks" / ("fast" if options.mode == "fast" else "")
    return Path(options.results_dir or default_dir)
