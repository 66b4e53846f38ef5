"""Checks of train.py on a user's own files (`--train-file ... --eval-file ...`), where the place prior meets data
that the benchmark tasks do not show. Both build CSV files from real tasks, as a user would write them.

- Region labels: a user's file may label posts by country or state. Without a places file, train.py places such a
  label at the mean of its posts, and the population prior used to take the population of the GeoNames city nearest
  that centre: a village in the middle of a country, or the capital of a neighbour's. `user_data` now counts the
  people of the cities in the label's region (`place_prior.region_populations`). Task: vardial-bcms posts (exact
  GPS), each labelled by the country of its nearest GeoNames city; a few-shot model scored three ways.
- The whole file: without `--shots`, train.py trains on every post, and the posts follow their own place
  distribution, which the model learns; the population prior then counts it twice, so train.py now turns its
  default prior off for such posts (`training.modeling.resolve_place_prior`). Tasks: a seeded share of the pool of
  midwest-2017 and umass-global with the places file; a model trained with the prior asked for, so that its
  eval_results.json holds the metrics with and without it.
"""

import csv
import json
from pathlib import Path

import numpy as np

from .evaluation import metrics_from_scores

# The three ways a region-label model's query posts are scored, in the report's order.
PRIORS = ("no prior", "nearest city to the centre (before)", "region population (now)")
WITHOUT_PRIOR = "without_place_prior/"


def _write_csv(path, header, rows):
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def _post_rows(posts, labels):
    return ([text, label, repr(float(latitude)), repr(float(longitude))]
            for text, label, latitude, longitude in zip(posts["text"], labels, posts["latitude"], posts["longitude"]))


def write_country_task(task_data, output_dir):
    """Write `task_data`'s pool and query posts to output_dir/{pool,query}.csv (text, label, latitude, longitude),
    each labelled by the ISO country code of the GeoNames city nearest its coordinates. Returns the two paths."""
    from modeling_contrastgeo.gazetteer import load_geonames_cities, nearest_cities

    cities = load_geonames_cities()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for split in ("pool", "query"):
        posts = task_data.task[split]
        nearest = nearest_cities(posts["latitude"], posts["longitude"], cities)
        labels = [cities[city]["country_code"] for city in nearest]
        paths.append(_write_csv(Path(output_dir) / f"{split}.csv", ["text", "label", "latitude", "longitude"],
                                _post_rows(posts, labels)))
    return paths


def write_pool_share_task(task_data, output_dir, share, seed):
    """Write a seeded random `share` of `task_data`'s pool (its place distribution kept), its query posts and its
    places to output_dir/{pool,query,places}.csv, labels by place name. Returns the three paths."""
    names = [place["name"] for place in task_data.places]
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    pool = task_data.task["pool"]
    rows = np.sort(np.random.default_rng(seed).permutation(len(pool))[:round(share * len(pool))])
    paths = [_write_csv(Path(output_dir) / f"{split}.csv", ["text", "label", "latitude", "longitude"],
                        _post_rows(posts, [names[label] for label in posts["label"]]))
             for split, posts in (("pool", pool.select(rows)), ("query", task_data.task["query"]))]
    paths.append(_write_csv(Path(output_dir) / "places.csv", ["label", "latitude", "longitude"],
                            ([place["name"], place["latitude"], place["longitude"]] for place in task_data.places)))
    return paths


def read_posts(path):
    """(texts, labels, (N, 2) latlon) of a CSV written here."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    latlon = np.array([[float(row["latitude"]), float(row["longitude"])] for row in rows], dtype=np.float64)
    return [row["text"] for row in rows], [row["label"] for row in rows], latlon


def score_region_priors(model_dir, query_path, pool_path):
    """Metrics of a model trained by train.py on the country files, on its query posts, for each of `PRIORS`
    (at the model's own prior weight and temperature), the pool's majority label as a reference, and the top-1 of
    its eval_results.json (train.py scored it with the region population; `check_top1` is that same number as
    rescored here)."""
    from modeling_contrastgeo import ContrastGeoModel
    from modeling_contrastgeo.place_prior import log_place_prior

    model = ContrastGeoModel.from_pretrained(model_dir).eval()
    places = [dict(place) for place in model.config.places]
    names = [place["name"] for place in places]
    texts, labels, query_latlon = read_posts(query_path)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"{query_path}: label(s) {unknown} are not among the model's places")
    true_labels = np.array([names.index(label) for label in labels])
    place_latlon = np.array([[place["latitude"], place["longitude"]] for place in places], dtype=np.float64)
    logits, _ = model.predict_logits(texts, places=places, allow_blank=True)
    logits = logits.numpy().astype(np.float64) / model.config.probability_temperature
    weight = model.config.place_prior_weight
    point_places = [{key: value for key, value in place.items() if key != "population"} for place in places]
    prior_scores = {
        PRIORS[0]: logits,
        PRIORS[1]: logits + log_place_prior(point_places, "population", weight),
        PRIORS[2]: logits + log_place_prior(places, "population", weight),
    }
    metrics = {prior: metrics_from_scores(scores, true_labels, query_latlon, place_latlon)
               for prior, scores in prior_scores.items()}
    _, pool_labels, _ = read_posts(pool_path)
    majority = np.zeros((len(texts), len(names)))
    majority[:, names.index(max(sorted(set(pool_labels)), key=pool_labels.count))] = 1.0
    metrics["majority (pool label counts)"] = metrics_from_scores(majority, true_labels, query_latlon, place_latlon)
    eval_results = json.loads((Path(model_dir) / "eval_results.json").read_text())
    return {"metrics": metrics, "weight": weight, "saved_top1": eval_results["top1"],
            "check_top1": metrics[PRIORS[2]]["top1"], "num_posts": len(texts),
            "populations": {place["name"]: place.get("population") for place in places}}


def whole_file_metrics(model_dir):
    """{"population prior (before)": metrics, "no prior (now the default)": metrics} from a model's
    eval_results.json (its plain and its `without_place_prior/` metrics)."""
    results = json.loads((Path(model_dir) / "eval_results.json").read_text())
    if not any(key.startswith(WITHOUT_PRIOR) for key in results):
        raise ValueError(f"{model_dir}: eval_results.json has no {WITHOUT_PRIOR}* metrics; train with --place-prior "
                         "population")
    without = {key[len(WITHOUT_PRIOR):]: value for key, value in results.items() if key.startswith(WITHOUT_PRIOR)}
    return {"population prior (before)": results, "no prior (now the default)": without}


def _cell(metrics):
    return f"{100 * metrics['top1']:.1f} / {metrics['median_km']:.0f} / {100 * metrics['macro_acc']:.1f}"


def _table(first_column, columns, rows_of_metrics):
    """Markdown: one line per scoring (keys of each metrics dict), one column per entry of `columns`."""
    lines = [f"| {first_column} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for scoring in rows_of_metrics[0]:
        lines.append(f"| {scoring} | " + " | ".join(_cell(metrics[scoring]) for metrics in rows_of_metrics) + " |")
    return "\n".join(lines)


def _mean(metrics_list):
    return {key: float(np.mean([metrics[key] for metrics in metrics_list])) for key in ("top1", "median_km",
                                                                                         "macro_acc")}


def region_labels_section(rows):
    """Markdown section of the region-label check: one column per seed, then their mean."""
    columns = [f"seed {row['seed']}" for row in rows] + ["mean"]
    metrics = [row["metrics"] for row in rows]
    metrics.append({scoring: _mean([m[scoring] for m in metrics]) for scoring in metrics[0]})
    populations = ", ".join(f"{name} {population:,.0f}" for name, population in rows[0]["populations"].items())
    checks = ", ".join(f"seed {row['seed']} {row['saved_top1']:.4f} / {row['check_top1']:.4f}" for row in rows)
    return (f"## Region labels\n\nvardial-bcms posts (exact GPS) labelled by the country of their nearest GeoNames "
            f"city, trained with train.py's defaults from the CSV files (no places file), K={rows[0]['k']} posts per "
            f"country (the countries with fewer taken whole); the query posts scored three ways at the model's prior "
            f"weight {rows[0]['weight']:g}. Top-1 % / median km / macro %.\n\n"
            f"{_table('scoring', columns, metrics)}\n\nPopulations saved with seed {rows[0]['seed']}'s model (a "
            f"label whose posts stay within 25 km of its centre is a town: the nearest city's population, 15,000 "
            f"without one): {populations}.\n\neval_results.json top-1 / the same model rescored here with the "
            f"region population: {checks}.\n")


def whole_file_section(rows):
    """Markdown section of the whole-file check: one column per task."""
    columns = [f"{row['task']} ({row['num_train_posts']} posts, {row['posts_per_place']} per place)" for row in rows]
    return (f"## The whole file\n\nA seeded {100 * rows[0]['share']:.0f}% of each task's pool (seed "
            f"{rows[0]['seed']}; its place distribution kept) with the task's places file, trained on every post "
            f"(no --shots) for {rows[0]['max_train_steps']} steps with `--place-prior population`, scored on the "
            f"task's query posts (eval_results.json). Top-1 % / median km / macro %.\n\n"
            f"{_table('scoring', columns, [row['metrics'] for row in rows])}\n")


def user_files_report(sections, command, commit, trained_at=None):
    """The report; `trained_at`: {model folder: the commit train.py trained it at} (a model trained by an earlier,
    interrupted run of the same flags is reused)."""
    models = ""
    if trained_at:
        models = "\nModels trained at: " + ", ".join(f"`{folder}` `{at}`" for folder, at in trained_at.items()) + ".\n"
    return (f"# train.py on a user's files: the place prior\n\nWritten by `python benchmarks/user_files.py {command}` "
            f"at commit `{commit}`. See contrastgeo/benchmarking/user_files.py for what each check builds.\n{models}\n"
            + "\n".join(sections))
