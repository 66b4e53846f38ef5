"""The benchmark runner: grid planning, results.json schema and resume logic, reports, trained-run sharing."""

import argparse
import dataclasses
import json
import os

import numpy as np
import pytest

from contrastgeo.benchmarking import methods as methods_module
from contrastgeo.benchmarking import runner as runner_module
from contrastgeo.benchmarking.options import build_parser
from contrastgeo.benchmarking.records import (METRIC_FIELDS, ResultsStore, config_hash, exclusive_results_dir,
                                              merge_results, record_key, validate_record)
from contrastgeo.benchmarking.report import anchor_rows, readme_headline_markers, render_headline, render_results
from contrastgeo.benchmarking.runner import BenchmarkRunner, Cell, TaskData, plan_cells
from datasets_scripts import REPO_ROOT
from datasets_scripts.common import text_between_markers

from .tiny_models import make_tiny_encoder, synthetic_swiss_task


def _record(task="vardial-ch", method="majority", k=None, seed=None, top1=0.5, median_km=50.0, **extra):
    record = {"task": task, "method": method, "k": k, "seed": seed, "num_examples": 10, "commit": "abc",
              "config_hash": "h0", "wall_time_s": 1.0}
    record.update({name: 0.5 for name in METRIC_FIELDS})
    record.update(top1=top1, median_km=median_km, mean_km=median_km, **extra)
    return record


def test_plan_runs_references_once_and_ablations_only_at_4_and_16():
    cells = plan_cells(["majority", "prototypes", "contrastgeo-tlc-only"], ["t"], shots=[1, 4, 16], seeds=[0, 1])
    assert Cell("t", "majority", None, None) in cells
    assert sum(cell.method == "majority" for cell in cells) == 1
    assert sum(cell.method == "prototypes" for cell in cells) == 6
    assert sorted({cell.k for cell in cells if cell.method == "contrastgeo-tlc-only"}) == [4, 16]
    with pytest.raises(ValueError, match="unknown method"):
        plan_cells(["nope"], ["t"], [1], [0])


def test_store_skips_a_done_cell_and_a_config_change_invalidates_it(tmp_path):
    store = ResultsStore(tmp_path / "results.json")
    store.add(_record(method="prototypes", k=4, seed=0, config_hash="h1"))
    assert store.find(("vardial-ch", "prototypes", 4, 0), "h1") is not None
    assert store.find(("vardial-ch", "prototypes", 4, 0), "h2") is None
    store.add(_record(method="prototypes", k=4, seed=0, config_hash="h2", top1=0.7))
    reloaded = ResultsStore(tmp_path / "results.json")
    assert len(reloaded.records) == 1 and reloaded.records[0]["top1"] == 0.7
    assert isinstance(json.loads((tmp_path / "results.json").read_text()), list)


@pytest.mark.parametrize("change, message", [
    ({"top1": 1.5}, "top1 is a fraction"), ({"k": "4"}, "k must be an integer or null"),
    ({"median_km": float("nan")}, "median_km must be a finite number"), ({"task": ""}, "task must be a non-empty"),
    ({"invalidated": " "}, "invalidated must be the reason"), ({"invalidated": True}, "invalidated must be the reason"),
])
def test_record_schema_errors_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        validate_record({**_record(), **change})
    bad = _record()
    del bad["acc@161km"]
    with pytest.raises(ValueError, match="acc@161km"):
        validate_record(bad)


def test_store_rejects_a_file_with_two_records_for_one_cell(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps([_record(), _record(config_hash="other")]))
    with pytest.raises(ValueError, match="record 1: a second record for cell"):
        ResultsStore(path)


def test_merge_adds_other_runs_replaces_their_cells_and_rejects_bad_files(tmp_path):
    store = ResultsStore(tmp_path / "main" / "results.json")
    store.add(_record(method="logreg", k=4, seed=0, top1=0.1))
    store.add(_record(method="logreg", k=4, seed=1, top1=0.2))
    first, second = tmp_path / "gpu-a.json", tmp_path / "gpu-b.json"
    first.write_text(json.dumps([_record(method="logreg", k=4, seed=1, top1=0.3, environment={"device": "cuda"}),
                                 _record(method="logreg", k=16, seed=0, top1=0.4)]))
    second.write_text(json.dumps([_record(method="logreg", k=16, seed=0, top1=0.5)]))
    assert merge_results(store, [first, second]) == 2
    reloaded = {(r["k"], r["seed"]): r for r in ResultsStore(store.path).records}
    assert {key: r["top1"] for key, r in reloaded.items()} == {(4, 0): 0.1, (4, 1): 0.3, (16, 0): 0.5}
    assert reloaded[(4, 1)]["environment"] == {"device": "cuda"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([_record(method="logreg", k=1, seed=0), {**_record(), "top1": 2.0}]))
    with pytest.raises(ValueError, match="bad.json record 1: top1 is a fraction"):
        merge_results(store, [bad])
    with pytest.raises(ValueError, match="missing.json does not exist"):
        merge_results(store, [tmp_path / "missing.json"])
    assert len(ResultsStore(store.path).records) == 3  # a failed merge changes nothing
    text = render_results(ResultsStore(store.path).records, [], "standard")
    assert "| vardial-ch | logreg | cuda | 1 |" in text and "| vardial-ch | logreg | not recorded | 2 |" in text


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_results_markdown_labels_partial_runs_and_checks_anchors():
    records = [_record(top1=0.06, median_km=52.0), _record(method="zero-shot-name", top1=0.036, median_km=69.9),
               _record(method="logreg-full-pool", top1=0.20, median_km=42.8)]
    records += [_record(method="logreg", k=16, seed=seed, top1=0.062 + 0.001 * seed, median_km=53.3)
                for seed in range(3)]
    planned = [Cell(r["task"], r["method"], r["k"], r["seed"]) for r in records] + [Cell("vardial-ch", "logreg", 4, 0)]
    text = render_results(records, planned, "standard")
    assert "**PARTIAL**: 6 of 7 cells" in text and "- vardial-ch / logreg: 1 cell(s) (K 4)" in text
    verdicts = {row[1]: row[-1] for row in anchor_rows(records)}
    assert verdicts == {"majority": True, "zero-shot": True, "best frozen K=16": True, "logreg-full-pool": False}
    assert "| logreg | 16 | 3 | 6.3 ± 0.1 |" in text
    complete = render_results(records, planned[:-1], "standard")
    assert "PARTIAL" not in complete and "Complete: all 6 cells" in complete
    assert "| logreg | 6.3 ± 0.1 / 53 km |" in render_headline(records)
    stale = {("vardial-ch", "logreg", 16, 1)}  # one seed of an earlier configuration marks its row
    marked = render_results(records, planned, "standard", stale)
    assert "‡ 1 of the done cells come from an earlier configuration" in marked
    assert "- vardial-ch / logreg: 1 cell(s) (K 16)" in marked and "| logreg ‡ | 16 | 3 | 6.3 ± 0.1 |" in marked
    assert "| logreg | 6.3 ± 0.1 / 53 km ‡ |" in render_headline(records, stale)
    assert "‡" not in render_headline(records, {("vardial-ch", "logreg", 4, 0)})  # not a shown cell


def _options(tmp_path, encoder, **overrides):
    options = build_parser().parse_args(["--mode", "fast", "--tasks", "synthetic", "--shots", "1", "2",
                                         "--seeds", "0", "1", "--results-dir", str(tmp_path / "results"),
                                         "--embedding-cache-dir", str(tmp_path / "cache"),
                                         "--encoder", str(encoder), "--work-dir", str(tmp_path / "work")])
    return argparse.Namespace(**{**vars(options), **overrides})


@pytest.fixture()
def tiny_encoder(tmp_path_factory, minilm_path):
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder", minilm_path)


def test_runner_resumes_and_recomputes_only_changed_cells(tmp_path, tiny_encoder, monkeypatch):
    task = {"data": synthetic_swiss_task()}
    monkeypatch.setattr(runner_module, "load_task_data",
                        lambda name, raw_dir=None: TaskData.from_task(name, task["data"]))
    methods = ["majority", "zero-shot", "prototypes+prompt", "tfidf-logreg"]
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods)).run() == 0
    store_path = tmp_path / "results" / "results.json"
    first = {tuple(r[k] for k in ("method", "k", "seed")): r for r in json.loads(store_path.read_text())}
    assert len(first) == 2 + 2 * 2 * 2
    assert all(r["num_examples"] == 12 and r["num_classes"] == 4 for r in first.values())
    assert (tmp_path / "results" / "RESULTS.md").read_text().count("PARTIAL") == 1
    assert len(list((tmp_path / "cache").glob("synthetic-*.safetensors"))) == 1

    calls = []
    original = runner_module.frozen_scores
    # --report-only rewrites the reports from results.json and runs nothing (it loads the task only to hash cells).
    (tmp_path / "results" / "RESULTS.md").write_text("stale")
    monkeypatch.setattr(runner_module, "frozen_scores", lambda *a: pytest.fail("report-only scored a cell"))
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods, report_only=True)).run() == 0
    report = (tmp_path / "results" / "RESULTS.md").read_text()
    assert report.startswith("# Benchmark results") and "‡" not in report
    monkeypatch.setattr(runner_module, "frozen_scores", lambda *a: calls.append(a[0].name) or original(*a))
    BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods)).run()
    assert calls == []  # everything done: nothing recomputed

    changed = dataclasses.replace(methods_module.METHODS_BY_NAME["tfidf-logreg"],
                                  settings={**methods_module.TFIDF_SETTINGS, "C": 1.0})
    monkeypatch.setattr(methods_module, "METHODS", [changed if m.name == "tfidf-logreg" else m
                                                    for m in methods_module.METHODS])
    monkeypatch.setattr(methods_module, "METHODS_BY_NAME", {m.name: m for m in methods_module.METHODS})
    # Until a run replaces them, the reports mark the records of the earlier configuration.
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods, report_only=True)).run() == 0
    report = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "| tfidf-logreg ‡ | 1 |" in report and "| tfidf-logreg ‡ | 2 |" in report
    assert "| prototypes+prompt |" in report
    headline = (tmp_path / "results" / "HEADLINE.md").read_text()
    assert "‡: at least one seed's record" in headline and headline.count(" ‡") == 1  # tfidf-logreg at K=2
    BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods)).run()
    assert sorted(calls) == ["tfidf-logreg"] * 4
    assert "‡" not in (tmp_path / "results" / "RESULTS.md").read_text()

    calls.clear()
    task["data"] = synthetic_swiss_task(query_suffix=" !")  # new task content: every cell is stale
    BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods)).run()
    assert len(calls) == len(first)
    assert len(json.loads(store_path.read_text())) == len(first)
    assert len(list((tmp_path / "cache").glob("synthetic-*.safetensors"))) == 2


def test_invalidated_records_are_reported_stale_with_their_reason_until_a_run_replaces_them(tmp_path, tiny_encoder,
                                                                                            monkeypatch):
    """For a code change the config hash cannot see (a bug fix in what a method runs)."""
    task = TaskData.from_task("synthetic", synthetic_swiss_task())
    monkeypatch.setattr(runner_module, "load_task_data", lambda name, raw_dir=None: task)
    methods = ["majority", "tfidf-logreg"]
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods)).run() == 0
    store_path = tmp_path / "results" / "results.json"
    before = {record_key(record): record for record in json.loads(store_path.read_text())}
    with pytest.raises(ValueError, match="--invalidate needs the reason"):
        BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods, invalidate=" "))
    calls = []
    original = methods_module.baselines.tfidf_logistic_regression_scores
    monkeypatch.setattr(methods_module.baselines, "tfidf_logistic_regression_scores",
                        lambda *a, **kw: calls.append(1) or original(*a, **kw))
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=["tfidf-logreg"], shots=[2], seeds=[1],
                                    invalidate="fixed the n-gram IDF in abc123")).run() == 0
    assert calls == []  # marking runs nothing
    after = {record_key(record): record for record in json.loads(store_path.read_text())}
    assert [key for key in after if after[key].get("invalidated")] == [("synthetic", "tfidf-logreg", 2, 1)]
    assert after[("synthetic", "tfidf-logreg", 2, 1)]["top1"] == before[("synthetic", "tfidf-logreg", 2, 1)]["top1"]
    report = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "Invalidated by `--invalidate` (1 record(s)): fixed the n-gram IDF in abc123" in report
    assert "| tfidf-logreg ‡ | 2 |" in report and "| tfidf-logreg | 1 |" in report
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=methods)).run() == 0
    assert len(calls) == 1  # only the invalidated cell ran again
    rerun = {record_key(record): record for record in json.loads(store_path.read_text())}
    assert not any(record.get("invalidated") for record in rerun.values()) and rerun.keys() == before.keys()
    assert "‡" not in (tmp_path / "results" / "RESULTS.md").read_text()


def test_methods_with_equal_training_share_one_run(tmp_path, tiny_encoder):
    trained = BenchmarkRunner(_options(tmp_path, tiny_encoder)).trained
    data = TaskData.from_task("synthetic", synthetic_swiss_task())
    key = {name: trained.training_hash(methods_module.METHODS_BY_NAME[name], data, 4, 0) for name in
           ("contrastgeo", "contrastgeo-rerank", "contrastgeo-fusion-cross-attention", "contrastgeo-tlc-only",
            "classifier")}
    assert key["contrastgeo"] == key["contrastgeo-rerank"] == key["contrastgeo-fusion-cross-attention"]
    assert len({key["contrastgeo"], key["contrastgeo-tlc-only"], key["classifier"]}) == 3
    assert trained.training_hash(methods_module.METHODS_BY_NAME["contrastgeo"], data, 4, 1) != key["contrastgeo"]


def test_new_prior_populations_make_only_the_cells_scored_with_the_prior_stale(tmp_path, tiny_encoder):
    runner = BenchmarkRunner(_options(tmp_path, tiny_encoder))
    before = TaskData.from_task("synthetic", synthetic_swiss_task())
    after = TaskData.from_task("synthetic", synthetic_swiss_task())
    after.places = [dict(place, population=1000.0) if index == 0 else place for index, place in enumerate(after.places)]
    assert after.place_prior_populations != before.place_prior_populations
    cells = [Cell("synthetic", "population-prior", None, None)] + [
        Cell("synthetic", name, 4, 0) for name in ("tfidf-logreg+prior", "contrastgeo", "contrastgeo-rerank",
                                                    "tfidf-logreg", "contrastgeo-no-prior", "classifier", "majority")]
    changed = [cell.method for cell in cells if runner.cell_hash(cell, before) != runner.cell_hash(cell, after)]
    assert changed == ["population-prior", "tfidf-logreg+prior", "contrastgeo", "contrastgeo-rerank"]


def test_default_prompt_matches_the_model_default():
    from modeling_contrastgeo import ContrastGeoConfig

    assert tuple(ContrastGeoConfig().prompt_templates) == methods_module.DEFAULT_PROMPT_TEMPLATES
    assert len(methods_module.METHODS_BY_NAME) == len(methods_module.METHODS)  # method names are unique


def test_results_dir_lock_refuses_a_second_run_and_takes_over_a_stale_lock(tmp_path):
    with exclusive_results_dir(tmp_path):
        with pytest.raises(ValueError, match="in use by another benchmark run"):
            with exclusive_results_dir(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text("999999999")  # no such process
    with exclusive_results_dir(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())


def test_trained_methods_run_in_process_and_share_training(tmp_path, tiny_encoder, monkeypatch):
    monkeypatch.setattr(runner_module, "load_task_data",
                        lambda name, raw_dir=None: TaskData.from_task(name, synthetic_swiss_task()))
    methods = ["classifier", "contrastgeo", "contrastgeo-rerank", "contrastgeo-no-prior"]
    options = _options(tmp_path, tiny_encoder, only_methods=methods, shots=[4], seeds=[0],
                       train_flag=[("max_train_steps", 2)])
    assert BenchmarkRunner(options).run() == 0
    records = {r["method"]: r for r in json.loads((tmp_path / "results" / "results.json").read_text())}
    assert set(records) == set(methods)
    assert all(r["num_examples"] == 12 and r["settings"]["extra_train_flags"] == {"max_train_steps": 2}
               for r in records.values())
    # the re-ranking variant is scored on the model trained for the default, not on a second training run
    assert records["contrastgeo-rerank"]["train_time_s"] == records["contrastgeo"]["train_time_s"]
    assert records["contrastgeo-rerank"]["config_hash"] != records["contrastgeo"]["config_hash"]
    # so is the variant without the place prior (train.py reports both scorings of its model)
    assert records["contrastgeo-no-prior"]["train_time_s"] == records["contrastgeo"]["train_time_s"]
    assert not list((tmp_path / "work" / "runs" / "synthetic").iterdir())  # models deleted after scoring


def test_a_kept_model_is_reused_and_outlives_a_run_without_keep_models(tmp_path, tiny_encoder, monkeypatch):
    monkeypatch.setattr(runner_module, "load_task_data",
                        lambda name, raw_dir=None: TaskData.from_task(name, synthetic_swiss_task()))
    common = dict(only_methods=["contrastgeo"], shots=[4], seeds=[0], train_flag=[("max_train_steps", 2)])
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, keep_models=True, **common)).run() == 0
    [kept] = list((tmp_path / "work" / "runs" / "synthetic").iterdir())
    # the re-ranking variant needs the default's model: the kept one is scored, not trained again, and stays
    monkeypatch.setattr("contrastgeo.training.training_function",
                        lambda *args: pytest.fail("the kept model was trained again"))
    options = _options(tmp_path, tiny_encoder, **dict(common, only_methods=["contrastgeo-rerank"]))
    assert BenchmarkRunner(options).run() == 0
    assert (kept / "model.safetensors").is_file()
    records = json.loads((tmp_path / "results" / "results.json").read_text())
    assert {record["method"] for record in records} == {"contrastgeo", "contrastgeo-rerank"}


def test_a_method_that_trains_the_default_run_takes_its_current_record(tmp_path, tiny_encoder, monkeypatch):
    monkeypatch.setattr(runner_module, "load_task_data",
                        lambda name, raw_dir=None: TaskData.from_task(name, synthetic_swiss_task()))
    common = dict(shots=[4], seeds=[0], train_flag=[("max_train_steps", 2)])
    assert BenchmarkRunner(_options(tmp_path, tiny_encoder, only_methods=["contrastgeo"], **common)).run() == 0
    # The fusion ablation that names the default's fusion trains the default's run and scores it the same way.
    monkeypatch.setattr("contrastgeo.training.training_function",
                        lambda *args: pytest.fail("a run that results.json holds was trained again"))
    options = _options(tmp_path, tiny_encoder, only_methods=["contrastgeo-fusion-cross-attention"], **common)
    assert BenchmarkRunner(options).run() == 0
    store_path = tmp_path / "results" / "results.json"
    records = {r["method"]: r for r in json.loads(store_path.read_text())}
    default, shared = records["contrastgeo"], records["contrastgeo-fusion-cross-attention"]
    assert shared["same_run_as"] == "contrastgeo" and shared["config_hash"] != default["config_hash"]
    assert all(shared[name] == default[name] for name in (*METRIC_FIELDS, "commit", "finished_at", "wall_time_s"))
    assert "1 record(s) of contrastgeo-fusion-cross-attention share the training run and scoring of contrastgeo's" \
        in (tmp_path / "results" / "RESULTS.md").read_text()

    runner = BenchmarkRunner(_options(tmp_path, tiny_encoder, **common))
    data = TaskData.from_task("synthetic", synthetic_swiss_task())
    assert runner._same_run_record(Cell("synthetic", "contrastgeo-tlc-only", 4, 0), data) is None  # another run
    assert runner._same_run_record(Cell("synthetic", "contrastgeo-no-prior", 4, 0), data) is None  # scored otherwise
    # A record of an earlier configuration of the default is no longer the run this cell would train.
    store_path.write_text(json.dumps([dict(default, config_hash="earlier")]))
    runner = BenchmarkRunner(_options(tmp_path, tiny_encoder, **common))
    assert runner._same_run_record(Cell("synthetic", "contrastgeo-fusion-cross-attention", 4, 0), data) is None


@pytest.mark.slow
def test_workers_run_trained_cells_in_processes_with_the_in_process_results(tmp_path, tiny_encoder):
    def run(name, workers):
        options = build_parser().parse_args([
            "--mode", "standard", "--tasks", "vardial-ch", "--shots", "1", "--seeds", "0", "--only-methods",
            "classifier", "contrastgeo", "contrastgeo-no-prior", "--raw-dir", str(tmp_path / "no-raw-data"),
            "--encoder", str(tiny_encoder), "--work-dir", str(tmp_path / name / "work"),
            "--results-dir", str(tmp_path / name), "--train-flag", "max_train_steps=1", "--workers", str(workers)])
        assert BenchmarkRunner(options).run() == 0
        return {r["method"]: r for r in ResultsStore(tmp_path / name / "results.json").records}

    parallel, serial = run("parallel", 2), run("serial", 1)
    assert set(parallel) == set(serial) == {"classifier", "contrastgeo", "contrastgeo-no-prior"}
    for method, record in parallel.items():
        assert record["config_hash"] == serial[method]["config_hash"]
        assert {name: record[name] for name in METRIC_FIELDS} == pytest.approx(
            {name: serial[method][name] for name in METRIC_FIELDS})
        assert record["environment"]["concurrent_runs"] == 2 and "concurrent_runs" not in serial[method]["environment"]
    assert not [path for path in (tmp_path / "parallel").iterdir() if path.name.startswith(".jobs-")]
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        BenchmarkRunner(_options(tmp_path, tiny_encoder, workers=0))


@pytest.mark.parametrize("mode, results_dir", [("fast", "benchmarks/fast"), ("standard", "benchmarks")])
def test_readme_headline_is_the_committed_results(mode, results_dir):
    """The README's tables are rendered from the committed results.json, not typed in, with the marks of the
    records that the current code and defaults would no longer produce."""
    runner = BenchmarkRunner(build_parser().parse_args(["--mode", mode, "--report-only"]))
    assert runner.results_dir == REPO_ROOT / results_dir
    headline = render_headline(runner.store.records, runner.stale_keys())
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert text_between_markers(readme, *readme_headline_markers(mode)) == headline.strip("\n"), (
        f"run: python benchmarks/run_benchmark.py --mode {mode} --report-only --write-readme README.md")
    assert (REPO_ROOT / results_dir / "HEADLINE.md").read_text(encoding="utf-8") == headline


def test_without_place_prior_reads_the_prefixed_metrics():
    from contrastgeo.benchmarking.trained import without_place_prior

    metrics = {"top1": 0.5, "ece": 0.1, "num_examples": 12, "without_place_prior/top1": 0.25,
               "without_place_prior/ece": 0.2}
    assert without_place_prior(metrics) == {"top1": 0.25, "ece": 0.2, "num_examples": 12}
    assert without_place_prior({"top1": 0.5}) == {"top1": 0.5}  # a model without a prior: one scoring


def test_prior_methods_multiply_the_probabilities_by_the_populations():
    from contrastgeo import baselines
    from datasets_scripts.fewshot import k_shot_indices
    from modeling_contrastgeo.place_prior import log_place_prior

    data = TaskData.from_task("synthetic", synthetic_swiss_task())
    prior = methods_module.METHODS_BY_NAME["population-prior"]
    scores = methods_module.frozen_scores(prior, data)
    np.testing.assert_allclose(scores, np.broadcast_to(log_place_prior(data.places), scores.shape))
    assert data.places[scores[0].argmax()]["name"].startswith("Zürich")  # the most populous of the four

    support, _ = k_shot_indices(data.task["pool"], 2, 1)
    plain = baselines.tfidf_logistic_regression_scores(
        [data.pool_texts[i] for i in support], data.pool_labels[support], data.query_texts, 4)
    # raised to train.py's default weight, the one its ContrastGeo models use
    expected = np.log(plain) + log_place_prior(data.places, "population", 1.5)
    with_prior = methods_module.frozen_scores(methods_module.METHODS_BY_NAME["tfidf-logreg+prior"], data, support)
    np.testing.assert_allclose(with_prior, expected, rtol=1e-6)
