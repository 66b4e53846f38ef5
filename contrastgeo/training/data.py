"""Training and evaluation data of every objective, from a built-in task or from user files.

- contrastgeo / classifier: posts with place labels (`load_geolocation_data`). A task gives pool, query and places
  splits; user files go through `datasets_scripts.user_data.load_user_dataset`. Without a places file a label's
  coordinates are the spherical mean of *all* its posts in the training file (user_data's rule), computed before
  the few-shot draw, and its display name is the label itself. `--shots K` then keeps K posts per label
  (`datasets_scripts.fewshot.sample_k_shot`, seeded by `--seed`); with `--calibration heldout` (not the default:
  these are labels beyond the K shots) up to `HELDOUT_POSTS_PER_LABEL` of the posts left over per label are held out
  for calibrating the probability temperature: they never reach the optimizer. A temperature changes no ranking
  unless the model has a place prior, whose weight against the post's evidence it then sets.
- csp: geotagged texts (`load_csp_data`): the Wikivoyage bylines task or a file with text, latitude, longitude.
- location-prior: labelled locations (`load_location_prior_data`): the YFCC species task or a file with label,
  latitude, longitude.
csp and location-prior hold out `--eval-fraction` of their training rows (defaults 0.05 and 0) when there is no
evaluation split or file.
Evaluation labels are matched to training labels by name; an evaluation label the model cannot know is an error.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets_scripts import load_task
from datasets_scripts.fewshot import HELDOUT_POSTS_PER_LABEL, heldout_indices, k_shot_indices
from datasets_scripts.file_rows import (check_column_names, check_distinct_columns, integer_decimal_column,
                                       integer_of_decimal, read_rows)
from datasets_scripts.user_data import load_user_dataset, spherical_mean
from modeling_contrastgeo.places import check_coordinate

from .defaults import TASK_SPLITS

logger = logging.getLogger(__name__)
_MAX_LISTED_PROBLEMS = 10


@dataclass
class GeolocationData:
    """Posts for contrastgeo / classifier. `train` is a datasets.Dataset (text, label); `eval` holds numpy columns
    text (list), label, latitude, longitude, or is None; label i is `places[i]`."""

    train: object
    places: list
    eval: dict | None = None
    description: dict = field(default_factory=dict)
    heldout: object | None = None  # pool posts not drawn as shots (text, label), for calibration only


@dataclass
class GeotaggedTexts:
    """CSP corpus: texts with (N, 2) [latitude, longitude] for training and (optionally) evaluation."""

    train_texts: list
    train_latlon: np.ndarray
    eval_texts: list | None = None
    eval_latlon: np.ndarray | None = None
    description: dict = field(default_factory=dict)


@dataclass
class LabelledLocations:
    """Location-prior data: (N, 2) locations with class ids into `class_names`."""

    train_latlon: np.ndarray
    train_labels: np.ndarray
    class_names: list
    eval_latlon: np.ndarray | None = None
    eval_labels: np.ndarray | None = None
    description: dict = field(default_factory=dict)


def _load_task_splits(args):
    splits = load_task(args.task, data_dir=args.task_data_dir, raw_dir=args.raw_dir)
    default_train, default_eval = TASK_SPLITS[args.objective]
    train_split = args.train_split or default_train
    eval_split = args.eval_split or default_eval
    for name in (train_split, eval_split):
        if name is not None and name not in splits:
            raise ValueError(f"task {args.task!r} has no split {name!r}; its splits are {list(splits)}")
    return splits, train_split, eval_split


def _label_names(dataset, where):
    feature = dataset.features.get("label")
    if feature is None or not hasattr(feature, "names"):
        raise ValueError(f"{where}: the label column must be a ClassLabel (found {feature})")
    return list(feature.names)


def align_labels(labels, names, train_names, where, source_lines=None):
    """Map class ids of a split whose ClassLabel names are `names` onto `train_names` ids; unknown labels raise,
    naming the first one's file line when `source_lines` (one per row) is given, else its row number."""
    index_of = {name: i for i, name in enumerate(train_names)}
    mapping = np.array([index_of.get(name, -1) for name in names], dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    aligned = mapping[labels]
    unknown_rows = np.flatnonzero(aligned < 0)
    if unknown_rows.size:
        unknown = sorted({names[labels[row]] for row in unknown_rows})
        more = " ..." if len(unknown) > _MAX_LISTED_PROBLEMS else ""
        first = int(unknown_rows[0])
        first_at = f"row {first}" if source_lines is None else f"line {int(source_lines[first])}"
        # The training labels beside them show a mismatch of spelling ('1' against '1.0') at a glance.
        train_more = " ..." if len(train_names) > _MAX_LISTED_PROBLEMS else ""
        raise ValueError(
            f"{where}: {unknown_rows.size} row(s) have labels that are not training labels, first at {first_at}: "
            f"{unknown[:_MAX_LISTED_PROBLEMS]}{more}; training labels: {list(train_names[:_MAX_LISTED_PROBLEMS])}"
            f"{train_more}; a model scores only the places it was trained with"
        )
    return aligned


def _places_from_task(splits, pool, label_names):
    if "places" not in splits:
        return _places_from_posts(pool, label_names)
    table = splits["places"].to_pandas().sort_values("label")
    if table["label"].tolist() != list(range(len(label_names))):
        raise ValueError("the task's places split must have one row per label 0..C-1")
    return [{"name": row.name, "latitude": float(row.latitude), "longitude": float(row.longitude)}
            for row in table.itertuples()]


def _places_from_posts(dataset, label_names):
    labels = np.asarray(dataset["label"])
    latitudes, longitudes = np.asarray(dataset["latitude"]), np.asarray(dataset["longitude"])
    places = []
    for label, name in enumerate(label_names):
        rows = np.flatnonzero(labels == label)
        if rows.size == 0:
            raise ValueError(f"label {name!r} has no posts to place it: give its coordinates in a places table")
        latitude, longitude = spherical_mean(latitudes[rows], longitudes[rows])
        places.append({"name": name, "latitude": latitude, "longitude": longitude})
    return places


def _eval_columns(dataset, labels):
    return {
        "text": list(dataset["text"]),
        "label": np.asarray(labels, dtype=np.int64),
        "latitude": np.asarray(dataset["latitude"], dtype=np.float64),
        "longitude": np.asarray(dataset["longitude"], dtype=np.float64),
    }


def _require_two_places(places, where):
    if len(places) < 2:
        raise ValueError(f"{where}: one place ({places[0]['name']!r}) for every post: a model that tells places apart "
                         "needs posts of at least two labels")


def load_geolocation_data(args) -> GeolocationData:
    """Training posts (few-shot when `args.shots` > 0), evaluation posts and the label set."""
    user_columns = dict(text_column=args.text_column, label_column=args.label_column,
                        latitude_column=args.latitude_column, longitude_column=args.longitude_column,
                        on_bad_rows=args.on_bad_rows)
    if args.task is not None:
        splits, train_split, eval_split = _load_task_splits(args)
        pool = splits[train_split]
        label_names = _label_names(pool, f"task {args.task} split {train_split}")
        places = _places_from_task(splits, pool, label_names)
        _require_two_places(places, f"task {args.task}")
        evaluation = None
        if eval_split is not None:
            query = splits[eval_split]
            where = f"task {args.task} split {eval_split}"
            labels = align_labels(query["label"], _label_names(query, where), label_names, where)
            evaluation = _eval_columns(query, labels)
        source = {"task": args.task, "train_split": train_split, "eval_split": eval_split}
    else:
        pool, file_places = load_user_dataset(args.train_file, places_path=args.places_file, **user_columns)
        label_names = _label_names(pool, args.train_file)
        places = [{key: place[key] for key in ("name", "latitude", "longitude", "population") if key in place}
                  for place in file_places]
        _require_two_places(places, args.train_file)  # before the eval file is read: the run cannot start
        evaluation = None
        if args.eval_file is not None:
            # Its places are the train file's, so the eval file's own region populations are not looked up.
            query, _ = load_user_dataset(args.eval_file, places_path=args.places_file, find_regions=False,
                                         **user_columns)
            labels = align_labels(query["label"], _label_names(query, args.eval_file), label_names, args.eval_file,
                                  source_lines=query["source_line"])
            evaluation = _eval_columns(query, labels)
        source = {"train_file": str(args.train_file), "eval_file": args.eval_file, "places_file": args.places_file}
    pool_size = len(pool)
    pool = pool.select_columns(["text", "label"])
    train, heldout = pool, None
    if args.shots:
        support_rows, _ = k_shot_indices(pool, args.shots, args.seed, on_short_class=args.on_short_class)
        train = pool.select(support_rows.tolist())
        if args.calibration == "heldout":
            heldout = _heldout_posts(pool, support_rows, args.seed)
    if evaluation is None:
        logger.warning("no evaluation data (give --eval-file, or a task with an evaluation split): "
                       "the model is trained and saved without eval_results.json")
    description = {**source, "shots": args.shots, "seed": args.seed, "num_places": len(places),
                   "num_pool_posts": pool_size, "num_train_posts": len(train),
                   "num_eval_posts": 0 if evaluation is None else len(evaluation["text"]),
                   "num_heldout_posts": 0 if heldout is None else len(heldout)}
    return GeolocationData(train=train, places=places, eval=evaluation, description=description, heldout=heldout)


def _heldout_posts(pool, support_rows, seed, per_label=HELDOUT_POSTS_PER_LABEL):
    """Up to `per_label` posts per label from the pool rows outside the support set (None when there are none)."""
    rows = heldout_indices(pool["label"], support_rows, seed, per_label)
    return pool.select(rows.tolist()) if rows.size else None


# --------------------------------------------------------------------------- plain point files (csp, location-prior)
def read_point_file(path, columns, on_bad_rows="error"):
    """Read a CSV/TSV/JSONL/Parquet file whose rows are points: `columns` maps roles ("text", "label",
    "latitude", "longitude") to column names. Returns {role: list} in file order, and each row's file line under
    "source_line".

    Malformed rows (missing or empty text or label, a text that is not a string, a label that is not a string or an
    integer, missing / non-numeric / out-of-range coordinate, unreadable record) raise one ValueError listing the
    first ones with line numbers, or with `on_bad_rows="skip"` are left out and written with their line and reason to
    `<path>.skipped.jsonl`. Column names and labels are checked and read as `load_user_dataset` does (a column
    differing only in case is refused; "2.0" labels of CSV read as "2").
    """
    path = Path(path)
    check_distinct_columns(columns)
    names, rows = read_rows(path)
    check_column_names(path, names, {column: role for role, column in columns.items()})
    missing = [column for column in columns.values() if column not in names]
    if missing:
        raise ValueError(f"{path}: column(s) {missing} not found; the file has columns {names}")
    kept = {role: [] for role in columns} | {"source_line": []}
    problems, skipped = [], []
    for line, values, problem, raw in rows:
        if values is not None:
            problem = _point_problem(values, columns, line)
        if problem:
            problems.append(f"line {line}: {problem}")
            skipped.append({"line": line, "reason": problem, "row": raw})
            continue
        for role, column in columns.items():
            kept[role].append(_point_value(role, values[column]))
        kept["source_line"].append(line)
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
        more = f"; and {len(problems) - _MAX_LISTED_PROBLEMS} more" if len(problems) > _MAX_LISTED_PROBLEMS else ""
        if on_bad_rows == "error":
            raise ValueError(f"{path}: {len(problems)} malformed row(s) ({listed}{more}); fix them or pass "
                             "--on-bad-rows skip")
        report = path.with_name(path.name + ".skipped.jsonl")
        with open(report, "w", encoding="utf-8") as handle:
            for record in skipped:
                handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        logger.warning("%s: skipped %d malformed row(s) (%s%s), listed in %s", path, len(problems), listed, more,
                       report)
    if not kept[next(iter(columns))]:
        raise ValueError(f"{path}: no valid rows")
    if "label" in columns and integer_decimal_column(path, columns["label"]):
        kept["label"] = [integer_of_decimal(label) for label in kept["label"]]  # as load_user_dataset reads them
    return kept


def _point_value(role, value):
    if role in ("latitude", "longitude"):
        return float(value)
    # Integer class ids next to missing values come back from pandas-written files as floats (3.0).
    if role == "label" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _point_problem(values, columns, line):
    for role in ("text", "label"):
        if role in columns:
            value = values.get(columns[role])
            if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
                return f"missing {role}"
            # As load_user_dataset reads them: a list, a mapping or a boolean is no text or label.
            if role == "text" and not isinstance(value, str):
                return f"text must be a string, got {type(value).__name__}"
            integer = isinstance(value, int) and not isinstance(value, bool)
            if role == "label" and not (isinstance(value, str) or integer
                                        or (isinstance(value, float) and value.is_integer())):
                return f"label must be a string or an integer, got {value!r}"
    try:
        check_coordinate(values.get(columns["latitude"]), values.get(columns["longitude"]), f"line {line}")
    except ValueError as error:
        return str(error).split(": ", 1)[-1]
    return None


def _latlon(latitudes, longitudes):
    return np.stack([np.asarray(latitudes, dtype=np.float64), np.asarray(longitudes, dtype=np.float64)], axis=1)


def held_out_rows(num_rows, eval_fraction, seed):
    """(held-out rows, kept rows), each in file order: `eval_fraction` of `num_rows` (at least one) drawn with
    `seed` for evaluation. Raises ValueError when no training row would be left."""
    order = np.random.default_rng(seed).permutation(num_rows)
    num_eval = max(1, int(round(eval_fraction * num_rows)))
    if num_eval >= num_rows:
        raise ValueError(f"--eval-fraction {eval_fraction} leaves no training rows of {num_rows}")
    return np.sort(order[:num_eval]), np.sort(order[num_eval:])


def load_csp_data(args) -> GeotaggedTexts:
    """The CSP corpus; without an evaluation split or file, `args.eval_fraction` of it is held out (seeded)."""
    eval_texts = eval_latlon = None
    if args.task is not None:
        splits, train_split, eval_split = _load_task_splits(args)
        train = splits[train_split]
        texts, latlon = list(train["text"]), _latlon(train["latitude"], train["longitude"])
        if eval_split is not None:
            evaluation = splits[eval_split]
            eval_texts = list(evaluation["text"])
            eval_latlon = _latlon(evaluation["latitude"], evaluation["longitude"])
        source = {"task": args.task, "train_split": train_split, "eval_split": eval_split}
    else:
        columns = {"text": args.text_column, "latitude": args.latitude_column, "longitude": args.longitude_column}
        rows = read_point_file(args.train_file, columns, args.on_bad_rows)
        texts, latlon = rows["text"], _latlon(rows["latitude"], rows["longitude"])
        if args.eval_file is not None:
            rows = read_point_file(args.eval_file, columns, args.on_bad_rows)
            eval_texts, eval_latlon = rows["text"], _latlon(rows["latitude"], rows["longitude"])
        source = {"train_file": str(args.train_file), "eval_file": args.eval_file}
    if eval_texts is None and args.eval_fraction > 0:
        held_out, kept = held_out_rows(len(texts), args.eval_fraction, args.seed)
        eval_texts, eval_latlon = [texts[i] for i in held_out], latlon[held_out]
        texts, latlon = [texts[i] for i in kept], latlon[kept]
        source["eval_fraction"] = args.eval_fraction
    description = {**source, "num_train_rows": len(texts), "num_eval_rows": 0 if eval_texts is None else len(eval_texts)}
    return GeotaggedTexts(texts, latlon, eval_texts, eval_latlon, description)


def _require_two_classes(class_names, where):
    if len(class_names) < 2:
        raise ValueError(f"{where}: one class ({class_names[0]!r}) for every row: a location prior weighs classes "
                         "against each other (apply_location_prior renormalises over them), so it needs rows of at "
                         "least two labels")


def load_location_prior_data(args) -> LabelledLocations:
    """Labelled locations for the location prior; evaluation labels must be training classes."""
    eval_latlon = eval_labels = None
    if args.task is not None:
        splits, train_split, eval_split = _load_task_splits(args)
        train = splits[train_split]
        class_names = _label_names(train, f"task {args.task} split {train_split}")
        _require_two_classes(class_names, f"task {args.task} split {train_split}")
        latlon, labels = _latlon(train["latitude"], train["longitude"]), np.asarray(train["label"], dtype=np.int64)
        if eval_split is not None:
            evaluation = splits[eval_split]
            where = f"task {args.task} split {eval_split}"
            eval_labels = align_labels(evaluation["label"], _label_names(evaluation, where), class_names, where)
            eval_latlon = _latlon(evaluation["latitude"], evaluation["longitude"])
        source = {"task": args.task, "train_split": train_split, "eval_split": eval_split}
    else:
        columns = {"label": args.label_column, "latitude": args.latitude_column, "longitude": args.longitude_column}
        rows = read_point_file(args.train_file, columns, args.on_bad_rows)
        class_names = sorted(set(rows["label"]))
        _require_two_classes(class_names, args.train_file)  # before the eval file is read: the run cannot start
        labels = align_labels(np.arange(len(rows["label"])), rows["label"], class_names, args.train_file)
        latlon = _latlon(rows["latitude"], rows["longitude"])
        if args.eval_file is not None:
            rows = read_point_file(args.eval_file, columns, args.on_bad_rows)
            eval_labels = align_labels(np.arange(len(rows["label"])), rows["label"], class_names, args.eval_file,
                                       source_lines=rows["source_line"])
            eval_latlon = _latlon(rows["latitude"], rows["longitude"])
        source = {"train_file": str(args.train_file), "eval_file": args.eval_file}
    if eval_labels is None and args.eval_fraction > 0:
        held_out, kept = held_out_rows(len(labels), args.eval_fraction, args.seed)
        eval_latlon, eval_labels = latlon[held_out], labels[held_out]
        latlon, labels = latlon[kept], labels[kept]
        source["eval_fraction"] = args.eval_fraction
    description = {**source, "num_classes": len(class_names), "num_train_rows": len(labels),
                   "num_eval_rows": 0 if eval_labels is None else len(eval_labels)}
    return LabelledLocations(latlon, labels, class_names, eval_latlon, eval_labels, description)
