"""Re-score saved benchmark models with other place-prior weights, without training again.

The place prior enters only at prediction (`p(place | post) ∝ p_balanced(place | post) * prior(place) ** weight`),
so one forward pass over a task's query posts gives the metrics of every weight, with the model's saved
probability temperature and with temperature 1 (how `--calibration none` would have scored the same model). This
is how the weight in `contrastgeo/training/defaults.py` is chosen: `run_benchmark.py --keep-models` keeps the
trained models, and `benchmarks/rescore_place_prior.py` scores them here, with the weight `fit_prior_weight` fits on
the query posts without their labels.
"""

import json
from pathlib import Path

import numpy as np

from .evaluation import metrics_from_scores

# The fitted exponent is searched on a grid: the marginal likelihood is smooth in it, and a step of 0.05 moves
# top-1 by far less than the seed-to-seed noise, while a grid needs no assumption that the likelihood is concave.
PRIOR_WEIGHT_GRID = np.round(np.arange(0.0, 3.0 + 1e-9, 0.05), 2)
_TIE_TOLERANCE = 1e-9  # nats per post


def fit_prior_weight(log_likelihoods, log_prior, weights=PRIOR_WEIGHT_GRID) -> float:
    """The prior exponent under which unlabeled posts are most likely (maximum marginal likelihood).

    A few-shot model's scores are log p(post | place) up to a constant per post (it saw the same number of posts per
    place), so the posts' marginal log-likelihood under the prior raised to w is, up to a constant,
    mean_i log sum_c exp(score_ic) * prior_w(c). Its maximiser over w says how far the population prior describes
    where these posts come from: 0 when it does not (posts spread unlike people), 1 when it does, more when the
    posts lean to big places further than their populations do. Labels are not used. It is scored here, beside the
    fixed weights, and not used by train.py: where the model's scores carry little of the posts' place (vardial-bcms)
    they disagree with the prior that gives it all its top-1, and the fit drops the prior
    (`benchmarks/RESULTS_place_prior_fit.md`).

    Args:
        log_likelihoods: (N, C) scores of N unlabeled posts over the C places (logits over the temperature).
        log_prior: (C,) log of the normalised prior at weight 1 (`log_place_prior(places, kind, 1.0)`).
        weights: the candidate exponents, each finite and >= 0.
    """
    scores = np.asarray(log_likelihoods, dtype=np.float64)
    log_prior = np.asarray(log_prior, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"log_likelihoods must be a non-empty (num_posts, num_places) matrix, got shape "
                         f"{scores.shape}")
    if log_prior.shape != (scores.shape[1],):
        raise ValueError(f"log_prior must have shape ({scores.shape[1]},) to match log_likelihoods' places, got "
                         f"{log_prior.shape}")
    for name, values in (("log_likelihoods", scores), ("log_prior", log_prior)):
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            index = bad[0].tolist()
            raise ValueError(f"{name}[{', '.join(map(str, index))}] is {values[tuple(index)]}: every value must be "
                             "finite")
    from modeling_contrastgeo.place_prior import check_prior_weight

    weights = [check_prior_weight(weight) for weight in weights]
    if not weights:
        raise ValueError("weights must hold at least one candidate exponent")
    log_posts = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)

    def mean_log_likelihood(weight):
        log_prior_at_weight = weight * log_prior - np.logaddexp.reduce(weight * log_prior)
        return np.logaddexp.reduce(log_posts + log_prior_at_weight, axis=1).mean()

    per_weight = np.array([mean_log_likelihood(weight) for weight in weights])
    # Ties (to float rounding) go to the smallest exponent: posts that favour no exponent give no reason to trust
    # the prior more.
    return weights[int(np.flatnonzero(per_weight >= per_weight.max() - _TIE_TOLERANCE)[0])]


def rescoring_drifted(saved_top1, rescored_top1, num_posts) -> bool:
    """Whether a rescoring's top-1 differs from train.py's eval_results.json by more than one post (a tie broken the
    other way between float32 and float64 scores); False when there is no saved top-1."""
    return saved_top1 is not None and abs(saved_top1 - rescored_top1) > 1.5 / num_posts


def training_cell(model_dir):
    """(task, shots, seed) of a model saved by train.py, from its training_config.json."""
    config_path = Path(model_dir) / "training_config.json"
    if not config_path.is_file():
        raise ValueError(f"{model_dir}: no training_config.json; rescore only models saved by train.py "
                         "(e.g. run_benchmark.py --keep-models)")
    data = json.loads(config_path.read_text()).get("data", {})
    if not data.get("task"):
        raise ValueError(f"{model_dir}: trained on user files, not on a built-in task; its query posts are unknown")
    return data["task"], data.get("shots"), data.get("seed")


def rescore_place_prior(model_dir, weights, task_data):
    """Metrics of the saved model for each place-prior weight (0 = no prior) on `task_data`'s query posts.

    Args:
        model_dir: a ContrastGeo model folder saved by train.py.
        weights: exponents of the population prior, each a finite number >= 0.
        task_data: the `runner.TaskData` the model was trained and scored on.

    Returns:
        {"task", "k", "seed", "model_dir", "metrics": {weight: metrics}, "metrics_temperature_1": {weight: metrics},
        "saved_temperature", "saved_weight", "saved_top1", "rescored_top1", "fitted_weight",
        "metrics_fitted_weight"}: `metrics` use the saved temperature, `metrics_temperature_1` temperature 1;
        "saved_top1" is the top-1 that the model's eval_results.json reports for its own weight (None without the
        file) and "rescored_top1" the top-1 this scoring gives at that weight, as a check that the rescoring is the
        evaluation's; "fitted_weight" is the weight `fit_prior_weight` fits on the query posts without their labels
        (at the saved temperature) and "metrics_fitted_weight" the metrics at it.
    """
    from modeling_contrastgeo import ContrastGeoModel
    from modeling_contrastgeo.place_prior import check_prior_weight, log_place_prior, place_populations

    weights = [check_prior_weight(weight) for weight in weights]
    task, shots, seed = training_cell(model_dir)
    if task != task_data.name:
        raise ValueError(f"{model_dir} was trained on task {task!r}, not {task_data.name!r}")
    model = ContrastGeoModel.from_pretrained(model_dir).eval()
    saved_names = [place["name"] for place in model.config.places]
    if saved_names != [place["name"] for place in task_data.places]:
        raise ValueError(f"{model_dir}: the model's {len(saved_names)} places are not the task's "
                         f"{len(task_data.places)} places in the same order")
    logits, _ = model.predict_logits(task_data.query_texts, places=task_data.places, allow_blank=True)
    logits = logits.numpy().astype(np.float64)
    saved_temperature = model.config.probability_temperature
    saved_weight = model.config.place_prior_weight if model.config.place_prior else 0.0

    # Populations looked up once (a GeoNames nearest-city search), not once per weight.
    places = [dict(place, population=population)
              for place, population in zip(task_data.places, place_populations(task_data.places))]

    def metrics_at(weight, temperature=saved_temperature):
        scores = logits / temperature
        if weight:
            scores = scores + log_place_prior(places, "population", weight)
        return metrics_from_scores(scores, task_data.query_labels, task_data.query_latlon, task_data.place_latlon)

    metrics = {weight: metrics_at(weight) for weight in weights}

    def metrics_of(weight):  # a weight already scored is not scored again
        return metrics[weight] if weight in metrics else metrics_at(weight)

    fitted_weight = fit_prior_weight(logits / saved_temperature, log_place_prior(places, "population", 1.0))
    metrics_temperature_1 = {weight: metrics_at(weight, 1.0) for weight in weights}
    eval_results = Path(model_dir) / "eval_results.json"
    saved_top1 = json.loads(eval_results.read_text()).get("top1") if eval_results.is_file() else None
    rescored = metrics_of(saved_weight)
    return {"task": task, "k": shots, "seed": seed, "model_dir": str(model_dir), "metrics": metrics,
            "metrics_temperature_1": metrics_temperature_1, "saved_temperature": saved_temperature,
            "saved_weight": saved_weight, "saved_top1": saved_top1, "rescored_top1": rescored["top1"],
            "fitted_weight": fitted_weight, "metrics_fitted_weight": metrics_of(fitted_weight)}


def _top1_and_median(metrics):
    return f"{100 * metrics['top1']:.1f} / {metrics['median_km']:.0f}"


def rescoring_table(rows, weights, metrics_key="metrics"):
    """Markdown: one line per model (top-1 % / median km per weight), then the sum of top-1 over the models;
    `metrics_key` "metrics" (the saved temperature, with a last column for the weight fitted on the query posts) or
    "metrics_temperature_1"."""
    with_fitted = metrics_key == "metrics"
    columns = [f"w={weight:g}" for weight in weights] + (["fitted on the query posts: w, top-1 / km"] * with_fitted)
    lines = ["| task | K | seed | " + " | ".join(columns) + " |", "|" + "---|" * (3 + len(columns))]
    for row in rows:
        cells = [_top1_and_median(row[metrics_key][w]) for w in weights]
        if with_fitted:
            cells.append(f"{row['fitted_weight']:g}: {_top1_and_median(row['metrics_fitted_weight'])}")
        lines.append(f"| {row['task']} | {row['k']} | {row['seed']} | " + " | ".join(cells) + " |")
    sums = [sum(100 * row[metrics_key][w]["top1"] for row in rows) for w in weights]
    if with_fitted:
        sums.append(sum(100 * row["metrics_fitted_weight"]["top1"] for row in rows))
    lines.append("| sum of top-1 | | | " + " | ".join(f"{total:.1f}" for total in sums) + " |")
    return "\n".join(lines)


def _four_digits(value):
    return "none" if value is None else f"{value:.4f}"


def rescoring_report(rows, weights, command):
    """The markdown file of a rescoring: what was run, at which commit, on which models, and the table."""
    from datasets_scripts import REPO_ROOT

    from .records import git_commit

    models = "\n".join(
        f"- `{Path(row['model_dir']).name}` ({row['task']}, K={row['k']}, seed {row['seed']}): eval_results top-1 "
        f"{_four_digits(row['saved_top1'])} at weight {row['saved_weight']:g}, rescored {row['rescored_top1']:.4f}; "
        f"saved temperature {row['saved_temperature']:.3f}"
        for row in rows)
    tables = f"With each model's saved temperature:\n\n{rescoring_table(rows, weights)}"
    if any(row["saved_temperature"] != 1.0 for row in rows):
        tables += ("\n\nAt temperature 1 (no calibration, `--calibration none`):\n\n"
                   f"{rescoring_table(rows, weights, 'metrics_temperature_1')}")
    return (f"# Place-prior weight, rescored on saved models\n\nWritten by `python benchmarks/rescore_place_prior.py "
            f"{command}` at commit `{git_commit(REPO_ROOT)}`. Each model is scored once per weight on its task's query "
            f"posts (top-1 % / median km); training does not depend on the weight or the temperature. The last "
            f"column is the weight `fit_prior_weight` fits on those query posts without their labels (the one under "
            f"which the posts are most likely), and the scores at it.\n\n{tables}\n\n"
            f"Models:\n{models}\n")
