"""The scripts of benchmarks/ (not a package) loaded as modules, for the tests of their functions."""

import importlib.util
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_script(name: str):
    """benchmarks/<name>.py as a fresh module (its `main` not run)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_script_{name}", BENCHMARKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
