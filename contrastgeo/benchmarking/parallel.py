"""`--workers N`: the trained cells of a grid in N processes at once.

Why: one few-shot training run (batch 32, a 6-layer encoder) leaves a GPU mostly idle between its small kernels and
spends part of each cell on the CPU (n-gram features, calibration, the place prior); on an H200, 8 runs at a time
kept the GPU busy 73% of the time (nvidia-smi, 5 s samples). Each group of cells that shares one training run becomes
a job: a fresh process (spawned, so each has its own CUDA context and Accelerate state) that runs the usual runner on
that group alone, into a scratch results folder; the parent merges each finished job into results.json and rewrites
the reports, so an interrupted run keeps every finished job. Task copies and the CSP model are written by the parent
before any job starts (two jobs writing one folder would clash).
"""

import argparse
import contextlib
import logging
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .methods import get_methods
from .records import merge_results

logger = logging.getLogger("contrastgeo.benchmark")


def run_job(options, task, methods, k, seed, results_dir):
    """In a worker process: the runner on one training group; returns its failures, [(cells, error)]."""
    from .runner import BenchmarkRunner

    job_options = argparse.Namespace(**{
        **vars(options), "tasks": [task], "shots": [k], "seeds": [seed], "only_methods": list(methods),
        "skip_methods": [], "results_dir": str(results_dir), "write_readme": None, "workers": 1,
        "concurrent_runs": options.workers,
    })
    runner = BenchmarkRunner(job_options)
    runner.run()
    return runner.failures


@contextlib.contextmanager
def _quiet_workers():
    """Workers inherit the environment at spawn: no progress bars of theirs interleave with the parent's."""
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def run_trained_jobs(runner, jobs, progress):
    """Run `jobs` ([(data, cells sharing one training run)], in order) in `runner.options.workers` processes."""
    for data in {id(data): data for data, _ in jobs}.values():
        runner.trained.task_dir(data)
    if any(method.needs_csp for _, cells in jobs for method in get_methods([cell.method for cell in cells])):
        runner.trained.csp_dir()
    runner.results_dir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=runner.results_dir, prefix=".jobs-") as scratch, _quiet_workers(), \
            ProcessPoolExecutor(runner.options.workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {}
        for index, (data, cells) in enumerate(jobs):
            results_dir = Path(scratch) / f"job{index}"
            future = pool.submit(run_job, runner.options, data.name, [cell.method for cell in cells], cells[0].k,
                                 cells[0].seed, results_dir)
            futures[future] = (cells, results_dir)
        for future in as_completed(futures):
            cells, results_dir = futures[future]
            try:
                runner.failures += future.result()
            except Exception as error:  # the worker process itself died
                logger.error("job %s died: %r", [tuple(cell) for cell in cells], error)
                runner.failures.append((cells, repr(error)))
            if (results_dir / "results.json").is_file():
                merge_results(runner.store, [results_dir / "results.json"])
                runner.write_reports()
            progress.set_postfix_str(f"{cells[0].task} {'+'.join(c.method for c in cells)} k={cells[0].k} "
                                     f"seed={cells[0].seed} done")
            progress.update(len(cells))
