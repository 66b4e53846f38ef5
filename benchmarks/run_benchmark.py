"""Run the ContrastGeo benchmark (DESIGN.md §4): one command, resumable, with progress.

    python benchmarks/run_benchmark.py --mode fast          # one task, K in {4, 16}, 2 seeds -> benchmarks/fast/
    python benchmarks/run_benchmark.py                      # standard: 5 tasks, K in {1, 4, 16}, 3 seeds
    python benchmarks/run_benchmark.py --mode full          # K in {1, 2, 4, 8, 16}, 5 seeds (GPU)
    python benchmarks/run_benchmark.py --only-methods majority zero-shot prototypes logreg --tasks vardial-ch

Results: results.json (one record per task, method, K, seed), RESULTS.md and HEADLINE.md, rewritten after every
finished cell. A rerun skips the cells whose record has the current configuration hash. See
`contrastgeo/benchmarking/runner.py` for the modes and `--help` for every flag.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from contrastgeo.benchmarking.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
