"""Builders that turn the raw public data in ../shared/data into benchmark tasks (Parquet + dataset card).

Command line: `python -m datasets_scripts build --task vardial-ch --output-dir OUT` (see `__main__.py`).
Python: `build_task(name, raw_dir)` builds a task from raw data; `load_task(name)` returns a built one.

Builder modules are imported only when their task is asked for, so that `datasets_scripts.common` stays cheap
to import for the modules themselves.
"""

import importlib
import os
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
VENDORED_DIR = Path(__file__).resolve().parent / "data"
RAW_DIR_ENV = "CONTRASTGEO_RAW_DIR"
CACHE_DIR_ENV = "CONTRASTGEO_CACHE_DIR"

# task name -> (module in datasets_scripts, keyword arguments of its `build(raw_dir, **kwargs)`).
TASK_BUILDERS = {
    "vardial-ch": ("vardial", {"subtask": "ch"}),
    "vardial-bcms": ("vardial", {"subtask": "bcms"}),
    "midwest-2017": ("midwest", {"with_user_metadata": False}),
    "midwest-2017-meta": ("midwest", {"with_user_metadata": True}),
    "umass-global": ("umass", {}),
    "wikivoyage": ("wikivoyage", {}),
    "yfcc-species": ("yfcc", {}),
    "geonames": ("geonames", {}),
}
# The five geolocation tasks of the benchmark protocol (DESIGN.md section 4), in the order tables list them.
BENCHMARK_TASKS = ("vardial-ch", "vardial-bcms", "midwest-2017", "midwest-2017-meta", "umass-global")


def default_raw_dir():
    """$CONTRASTGEO_RAW_DIR, else the repository's sibling folder ../shared/data."""
    if os.environ.get(RAW_DIR_ENV):
        return Path(os.environ[RAW_DIR_ENV])
    return REPO_ROOT.parent / "shared" / "data"


def default_cache_dir():
    """$CONTRASTGEO_CACHE_DIR, else ~/.cache/contrastgeo/tasks."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path.home() / ".cache" / "contrastgeo" / "tasks"


def _builder(name):
    if name not in TASK_BUILDERS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_BUILDERS)}")
    module_name, kwargs = TASK_BUILDERS[name]
    return importlib.import_module(f"{__name__}.{module_name}"), kwargs


def build_task(name, raw_dir=None):
    """Build task `name` from the raw data in `raw_dir` (default: `default_raw_dir()`) -> datasets.DatasetDict."""
    module, kwargs = _builder(name)
    raw_dir = Path(raw_dir) if raw_dir is not None else default_raw_dir()
    if not raw_dir.is_dir():
        raise ValueError(f"raw data folder {raw_dir} does not exist (set --raw-dir or ${RAW_DIR_ENV})")
    return module.build(raw_dir, **kwargs)


def task_card(name):
    """The dataset card dict of task `name` (the builder module's `dataset_card(**kwargs)` or `CARD`)."""
    module, kwargs = _builder(name)
    if hasattr(module, "dataset_card"):
        return module.dataset_card(**kwargs)
    if hasattr(module, "CARD"):
        return dict(module.CARD)
    return {"pretty_name": name, "description": f"ContrastGeo task {name}, built by datasets_scripts.{module.__name__}."}


def build_and_write_task(name, output_dir, raw_dir=None):
    """Build task `name` and write it with `common.write_dataset`; returns (DatasetDict, output folder)."""
    from .common import write_dataset

    dataset_dict = build_task(name, raw_dir)
    return dataset_dict, write_dataset(dataset_dict, output_dir, task_card(name))


def _is_written_task(folder):
    return (folder / "README.md").is_file() and any(folder.glob("*.parquet"))


def load_task(name, data_dir=None, raw_dir=None, cache_dir=None):
    """A built task as a DatasetDict (pool, query, places for the geolocation tasks).

    Looks, in order, in `data_dir` (a folder written by `write_dataset`; it must exist), the cache
    (`cache_dir`/<name>, default ~/.cache/contrastgeo/tasks/<name>), then builds it from the raw data (when the
    raw folder exists) into the cache, and last falls back to the copy vendored in `datasets_scripts/data/<name>`.
    """
    from .common import read_dataset

    if data_dir is not None:
        data_dir = Path(data_dir)
        if not _is_written_task(data_dir):
            raise ValueError(f"{data_dir} holds no written task (README.md + .parquet files)")
        return read_dataset(data_dir)
    _builder(name)
    cached = Path(cache_dir or default_cache_dir()) / name
    if _is_written_task(cached):
        return read_dataset(cached)
    raw_dir = Path(raw_dir) if raw_dir is not None else default_raw_dir()
    if raw_dir.is_dir():
        build_and_write_task(name, cached, raw_dir)
        return read_dataset(cached)
    vendored = VENDORED_DIR / name
    if _is_written_task(vendored):
        return read_dataset(vendored)
    raise ValueError(
        f"task {name!r}: no cached copy in {cached}, no raw data in {raw_dir} and no vendored copy; "
        f"point --raw-dir / ${RAW_DIR_ENV} at the raw data (../shared/data)"
    )


__all__ = ["TASK_BUILDERS", "build_task", "build_and_write_task", "default_raw_dir", "load_task", "task_card"]
