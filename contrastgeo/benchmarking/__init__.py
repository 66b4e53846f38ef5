"""The benchmark of DESIGN.md §4: frozen embeddings cache, methods, runner, results file and reports.

Entry point: `python benchmarks/run_benchmark.py` (`contrastgeo.benchmarking.runner.main`).
"""
