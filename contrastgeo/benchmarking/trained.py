"""Trained methods: `train.py` runs (`contrastgeo.training.training_function`) in this process.

One training run serves every method that resolves to the same train.py hyper-parameters for a (task, K, seed):
the ContrastGeo default and its TLM re-ranking variant, or an ablation that happens to equal the default. The task
is written once per content fingerprint to `work_dir/tasks/` and passed with `--task-data-dir`, so train.py sees
exactly the rows the frozen baselines see. CSP pre-training for the `*-csp` ablations runs once per work dir.
"""

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from contrastgeo.training.evaluation import WITHOUT_PLACE_PRIOR

from .evaluation import metrics_from_ranking
from .records import config_hash

logger = logging.getLogger(__name__)
_DONE_FILE = "eval_results.json"


def _flag_arguments(flags):
    """train.py argv for {dest: value}: `--tlm-weight 0.0`, lists as several values, True as a bare switch."""
    argv = []
    for dest, value in flags.items():
        flag = "--" + dest.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def without_place_prior(metrics):
    """The metrics train.py reports for its model scored without the place prior (`without_place_prior/<name>`);
    a model without a prior is scored the same either way."""
    prefix = f"{WITHOUT_PLACE_PRIOR}/"
    if not any(key.startswith(prefix) for key in metrics):
        return metrics
    return {**{key: value for key, value in metrics.items() if "/" not in key},
            **{key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}}


class TrainedMethodRunner:
    """Trains and scores the `kind == "trained"` methods.

    Args:
        work_dir: where task copies, the CSP model and the trained models go.
        encoder_path: the text encoder every method shares (`--model-name-or-path`).
        encoder_fingerprint: hash of the encoder's weights (stands in for its path in config hashes).
        train_flags: extra train.py flags for every trained method (e.g. {"max_train_steps": 50}); part of the hash.
        csp_flags: extra train.py flags of the CSP pre-training run (seed 0 unless given).
        keep_models: keep each model folder this run trains (else it is deleted after scoring: ~90 MB each); a
            folder an earlier --keep-models run kept is reused and stays.
    """

    def __init__(self, work_dir, encoder_path, encoder_fingerprint, train_flags=None, csp_flags=None,
                 keep_models=False):
        self.work_dir = Path(work_dir)
        self.encoder_path = str(encoder_path)
        self.encoder_fingerprint = encoder_fingerprint
        self.train_flags = dict(train_flags or {})
        self.csp_flags = {"seed": 0, **(csp_flags or {})}
        self.keep_models = keep_models

    # ------------------------------------------------------------------ configuration and hashes
    def _parse(self, objective, flags, output_dir):
        from contrastgeo.training import hyperparameters, parse_args

        argv = ["--objective", objective, "--output-dir", str(output_dir), "--model-name-or-path", self.encoder_path]
        args = parse_args(argv + _flag_arguments(flags))
        return args, hyperparameters(args)

    def _portable(self, hyperparameters):
        """Hyper-parameters with machine-specific paths replaced by content hashes."""
        portable = dict(hyperparameters, model_name_or_path=self.encoder_fingerprint)
        if portable.get("init_location_encoder"):
            portable["init_location_encoder"] = self.csp_hash()
        return portable

    def csp_hash(self):
        _, hyperparameters = self._parse("csp", self.csp_flags, self.work_dir / "csp")
        return config_hash(dict(hyperparameters, model_name_or_path=self.encoder_fingerprint))

    def _cell_flags(self, method, data, k, seed, task_dir="<task>"):
        flags = {**self.train_flags, **method.train_flags, "task": data.name, "task_data_dir": str(task_dir),
                 "shots": k, "seed": seed}
        if method.needs_csp:
            flags["init_location_encoder"] = str(self.work_dir / "csp" / self.csp_hash())
        return flags

    def _cell_hyperparameters(self, method, data, k, seed):
        flags = self._cell_flags(method, data, k, seed)
        flags.pop("init_location_encoder", None)  # it need not exist yet; its hash is added to the training hash
        return self._parse(method.objective, flags, "<output>")[1]

    def training_hash(self, method, data, k, seed):
        """Hash of the training run a method needs; equal hashes share one run."""
        hyperparameters = self._cell_hyperparameters(method, data, k, seed)
        payload = {"hyperparameters": self._portable(hyperparameters), "task": data.fingerprint}
        if method.needs_csp:
            payload["csp"] = self.csp_hash()
        return config_hash(payload)

    def scores_with_place_prior(self, method, data, k, seed):
        """Whether the method's metrics are its model's scores times the model's place prior."""
        model_config = self._cell_hyperparameters(method, data, k, seed)["model_config"]
        return bool(model_config.get("place_prior")) and method.evaluation.get("place_prior") != "none"

    def hash_payload(self, method, data, k, seed):
        """What a trained method's record depends on: its training run and how the model is scored."""
        return {"training": self.training_hash(method, data, k, seed), "evaluation": method.evaluation}

    # ------------------------------------------------------------------ runs
    def task_dir(self, data):
        """The task written with `datasets_scripts.common.write_dataset`, once per content fingerprint."""
        from datasets_scripts import task_card
        from datasets_scripts.common import write_dataset

        folder = self.work_dir / "tasks" / f"{data.name}-{data.fingerprint[:16]}"
        if not (folder / "README.md").is_file():
            try:
                card = task_card(data.name)
            except ValueError:  # a task that is not built in: a plain card
                card = {"pretty_name": data.name, "description": f"benchmark copy of {data.name}"}
            write_dataset(data.task, folder, card)
        return folder

    def csp_dir(self):
        """The CSP pre-trained model (train.py --objective csp with its defaults), trained on first use."""
        from contrastgeo.training import training_function

        folder = self.work_dir / "csp" / self.csp_hash()
        if not (folder / "config.json").is_file():
            logger.info("CSP pre-training of the location encoder into %s", folder)
            args, hyperparameters = self._parse("csp", self.csp_flags, folder)
            training_function(hyperparameters, args)
        return folder

    def run(self, methods, data, k, seed):
        """Train once for `methods` (which share a training hash) and score each; -> {name: (metrics, timings)}."""
        from contrastgeo.training import training_function

        training_hash = self.training_hash(methods[0], data, k, seed)
        output_dir = self.work_dir / "runs" / data.name / f"{training_hash}-k{k}-seed{seed}"
        reused = (output_dir / _DONE_FILE).is_file()
        if reused:
            metrics = json.loads((output_dir / _DONE_FILE).read_text())
            train_seconds = json.loads((output_dir / "train_results.json").read_text()).get("train_runtime_s", 0.0)
            logger.info("reusing the trained model in %s", output_dir)
        else:
            if methods[0].needs_csp:
                self.csp_dir()  # once per work dir: not counted in this cell's time
            started = time.perf_counter()
            if output_dir.exists():
                shutil.rmtree(output_dir)  # an interrupted run: start it again
            args, hyperparameters = self._parse(
                methods[0].objective, self._cell_flags(methods[0], data, k, seed, self.task_dir(data)), output_dir
            )
            metrics = training_function(hyperparameters, args)
            train_seconds = time.perf_counter() - started
        results = {}
        for method in methods:
            evaluation_started = time.perf_counter()
            if method.evaluation.get("rerank_top_k"):
                method_metrics = self.reranked_metrics(output_dir, data, method.evaluation["rerank_top_k"])
            elif method.evaluation.get("place_prior") == "none":
                method_metrics = without_place_prior(metrics)
            else:
                method_metrics = metrics
            results[method.name] = (method_metrics, {"train_time_s": train_seconds,
                                                     "eval_time_s": time.perf_counter() - evaluation_started})
        if not self.keep_models and not reused:  # a model kept by an earlier --keep-models run stays
            shutil.rmtree(output_dir, ignore_errors=True)
        return results

    @staticmethod
    def reranked_metrics(model_dir, data, rerank_top_k, batch_size=64):
        """Metrics of the saved model's `geolocate(..., rerank=True)` top-5 over the task's places."""
        import torch

        from modeling_contrastgeo import ContrastGeoModel

        model = ContrastGeoModel.from_pretrained(model_dir).eval()
        if torch.cuda.is_available():  # on the CPU, re-ranking a task's query posts took ~75 s of a GPU cell's ~100
            model = model.to("cuda")
        predictions = model.geolocate(data.query_texts, places=data.places, top_k=5, batch_size=batch_size,
                                      rerank=True, rerank_top_k=rerank_top_k, allow_blank=True)
        index_of = {place["name"]: index for index, place in enumerate(data.places)}
        ranking = np.array([[index_of[place["name"]] for place in row] for row in predictions], dtype=np.int64)
        return metrics_from_ranking(ranking, data.query_labels, data.query_latlon, data.place_latlon)
