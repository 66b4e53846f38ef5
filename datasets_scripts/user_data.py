"""Bring your own data: read posts in the standard column layout (text, label, latitude, longitude).

Files are read by `file_rows.read_rows` (CSV / TSV / JSONL, optionally gzipped, and Parquet; see its docstring
for formats and line numbers). Columns other than the four named ones are ignored, but a named one that is
missing while a column differs from it only in case or surrounding spaces ("Label") is an error, not an absent
column (`check_column_names`). Every output row keeps its line number in `source_line`. A CSV/TSV label column
whose every non-empty value is an integer written as a decimal ("2.0", as pandas writes integers next to a missing
value) is read as the integers ("2"), as the same numbers are from JSONL or Parquet.

Where the labels and coordinates come from:
- label and coordinate columns: each label is a place named by the label string; its coordinates are the mean
  of its posts' coordinates on the sphere (mean of unit vectors, projected back to the surface: it handles the
  antimeridian, unlike averaging degrees), or exactly the shared coordinate when all its posts have one. A label
  whose posts spread farther than a town (a tenth of them beyond `NEAREST_CITY_MAX_KM` of its centre: a state, a
  country) is a region: its population, for the place prior, is that of the GeoNames cities in it
  (`place_prior.region_populations`), not that of the city nearest its centre, which may be a village in the
  middle of a country or the capital of a neighbour's.
- coordinates only (no label column, or `label_column=None`): each post is labelled with the nearest city of
  GeoNames' cities15000 table (haversine; optionally only cities in `gazetteer_countries`), the rule the
  benchmark tasks use. Place names are "City, Region, Country"; a name GeoNames gives to two cities gets
  " (GeoNames <id>)" appended so that classes stay distinct.
- labels only: a places file (`places_path`, see `load_places_file`) must give each label's coordinates; a
  post's coordinates are then its label's.
A places file may also be given with coordinates: it then fixes the places (all of them become classes, also
those without posts), while posts keep their own coordinates.

Malformed rows (missing or blank text, missing label, missing / non-numeric / NaN / out-of-range coordinate,
label absent from the places file, broken JSON line, wrong CSV field count) raise one ValueError listing the
count and the first problems with line numbers (`on_bad_rows="error"`), or are skipped (`"skip"`): each skipped
row is written with its line number and reason to a JSONL side file and a warning gives the count.
"""

import json
import logging
import math
from pathlib import Path

import datasets
import numpy as np

from modeling_contrastgeo.gazetteer import haversine_km, load_geonames_cities, nearest_cities
from modeling_contrastgeo.place_prior import NEAREST_CITY_MAX_KM, population_value, region_populations

from .common import post_features
from .file_rows import (check_column_names, check_distinct_columns, integer_decimal_column, integer_of_decimal,
                         read_rows)


logger = logging.getLogger(__name__)

DEFAULT_COLUMNS = {"label": "label", "latitude": "latitude", "longitude": "longitude"}
_MAX_LISTED_PROBLEMS = 10


def _is_missing(value):
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _coordinate(value, name, limit):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"missing {name}")
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if math.isnan(number):
        raise ValueError(f"{name} is NaN")
    if not math.isfinite(number) or abs(number) > limit:
        raise ValueError(f"{name} {number!r} is outside [-{limit}, {limit}]")
    return number


def _check_fields(values, checks):
    """Run each (key, column, check) on the row; returns ({key: value}, [problems])."""
    parsed, problems = {}, []
    for key, column, check in checks:
        try:
            parsed[key] = check(values.get(column))
        except ValueError as error:
            problems.append(str(error))
    return parsed, problems


def _text(value):
    if _is_missing(value):
        raise ValueError("empty text" if isinstance(value, str) else "missing text")
    if not isinstance(value, str):
        raise ValueError(f"text must be a string, got {type(value).__name__}")
    return value


def _label(value):
    if _is_missing(value):
        raise ValueError("missing label")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    # Integer class ids written through pandas next to a missing value come back as floats (3.0).
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise ValueError(f"label must be a string or an integer, got {value!r}")


def _label_reader(path, column):
    """The label check for `column` of the file at `path`: `_label`, or for a CSV/TSV column of integers written
    as decimals ("2.0", see `integer_decimal_column`) one that reads them as the integers, as `_label` reads 2.0
    from JSONL or Parquet: the same labels then match whichever way each file was written."""
    if not integer_decimal_column(path, column):
        return _label
    return lambda value: integer_of_decimal(_label(value))


def load_places_file(path):
    """Read and validate a places table: columns label, latitude, longitude, optionally name (default: label) and
    population (the place prior's weight; a blank cell leaves it to GeoNames).

    Returns a list of dicts {label (str), name, latitude, longitude[, population]} in file order. Every problem
    (missing column, missing label, repeated label, missing / non-numeric / NaN / out-of-range coordinate, a
    population that is not a number >= 0) is collected and raised as one ValueError with line numbers (counted as
    in `load_user_dataset`).
    """
    columns, rows = read_rows(path)
    check_column_names(path, columns, dict.fromkeys(("label", "latitude", "longitude", "name", "population")))
    missing = [name for name in ("label", "latitude", "longitude") if name not in columns]
    if missing:
        raise ValueError(f"{path}: a places file needs columns label, latitude, longitude (name optional); missing {missing}")
    checks = [
        ("label", "label", _label_reader(path, "label")),
        ("latitude", "latitude", lambda value: _coordinate(value, "latitude", 90.0)),
        ("longitude", "longitude", lambda value: _coordinate(value, "longitude", 180.0)),
    ] + ([("population", "population", population_value)] if "population" in columns else [])
    places, line_of_label, bad_rows = [], {}, _BadRows(Path(path), "error", what="place row(s)")
    for line, values, problem, raw in rows:
        parsed, row_problems = _check_fields(values, checks) if values is not None else ({}, [problem])
        if parsed.get("label") in line_of_label:
            row_problems.append(f"label {parsed['label']!r} repeats line {line_of_label[parsed['label']]}")
        if row_problems:
            bad_rows.add(line, "; ".join(row_problems), raw)
            continue
        line_of_label[parsed["label"]] = line
        if parsed.get("population", 0) is None:
            del parsed["population"]
        name = values.get("name")
        parsed["name"] = parsed["label"] if _is_missing(name) else str(name)
        places.append(parsed)
    bad_rows.finish()
    if not places:
        raise ValueError(f"{path}: the places file holds no places")
    return places


def spherical_mean(latitudes, longitudes):
    """Mean location of points on the sphere (degrees): the normalised mean of their unit vectors.

    Returns (latitude, longitude); raises ValueError when the vectors cancel out (points spread evenly around
    the globe have no meaningful centre). When every point is the same, that point is returned exactly.
    """
    latitudes = np.asarray(latitudes, dtype=np.float64)
    longitudes = np.asarray(longitudes, dtype=np.float64)
    if np.all(latitudes == latitudes[0]) and np.all(longitudes == longitudes[0]):
        return float(latitudes[0]), float(longitudes[0])
    lat, lon = np.radians(latitudes), np.radians(longitudes)
    mean = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]).mean(axis=1)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-9:
        raise ValueError("the points cancel out on the sphere and have no mean location")
    x, y, z = mean / norm
    return float(np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))), float(np.degrees(np.arctan2(y, x)))


def _column_present(columns, role, name):
    """Whether a label / coordinate column is there; a non-default name that is missing is a typo, not absence."""
    if name is None:
        return False
    if name in columns:
        return True
    if name != DEFAULT_COLUMNS[role]:
        raise ValueError(f"{role} column {name!r} not found; the file has columns {columns}")
    return False


def _gazetteer_places(latitudes, longitudes, gazetteer_countries):
    """Label posts by their nearest GeoNames cities15000 city: (label names per post, {name: (lat, lon)})."""
    countries = [gazetteer_countries] if isinstance(gazetteer_countries, str) else gazetteer_countries
    cities = load_geonames_cities(country_codes=countries)
    if not cities:
        raise ValueError(f"no city of GeoNames' cities15000 in {gazetteer_countries!r}")
    name_counts = {}
    for city in cities:
        name_counts[city["name"]] = name_counts.get(city["name"], 0) + 1
    names = [
        city["name"] if name_counts[city["name"]] == 1 else f"{city['name']} (GeoNames {city['geonameid']})"
        for city in cities
    ]
    nearest = nearest_cities(latitudes, longitudes, cities)
    coordinates = {names[index]: (cities[index]["latitude"], cities[index]["longitude"])
                   for index in set(nearest.tolist())}
    return [names[index] for index in nearest], coordinates


class _BadRows:
    """Collects malformed rows: raises one summary ValueError ("error") or writes them to a side file ("skip")."""

    def __init__(self, path, on_bad_rows, skipped_rows_path=None, what="row(s)", hint=""):
        self.path, self.on_bad_rows, self.what, self.hint = path, on_bad_rows, what, hint
        default_path = path.with_name(path.name + ".skipped.jsonl")
        self.skipped_rows_path = Path(skipped_rows_path) if skipped_rows_path else default_path
        self.count, self.listed, self._side_file = 0, [], None

    def add(self, line, reason, raw):
        self.count += 1
        if len(self.listed) < _MAX_LISTED_PROBLEMS:
            self.listed.append(f"line {line}: {reason}")
        if self.on_bad_rows == "skip":
            if self._side_file is None:
                try:
                    self._side_file = open(self.skipped_rows_path, "w", encoding="utf-8")
                except OSError as error:
                    message = f"cannot write the skipped-rows report ({error}); pass skipped_rows_path=..."
                    raise ValueError(message) from None
            record = {"line": line, "reason": reason, "row": _json_safe(raw)}
            self._side_file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def close(self):
        if self._side_file is not None:
            self._side_file.close()

    def finish(self):
        self.close()
        if not self.count:
            return
        more = f"; and {self.count - len(self.listed)} more" if self.count > len(self.listed) else ""
        summary = f"{self.path}: {self.count} malformed {self.what} ({'; '.join(self.listed)}{more})"
        if self.on_bad_rows == "error":
            raise ValueError(summary + self.hint)
        logger.warning("%s; skipped them, each with its line number and reason, in %s", summary, self.skipped_rows_path)


def _json_safe(raw):
    # Strict JSON has no NaN / Infinity: write them as strings so that any JSON reader can open the report.
    if isinstance(raw, dict):
        return {str(key): _json_safe(value) for key, value in raw.items()}
    if isinstance(raw, float) and not math.isfinite(raw):
        return str(raw)
    return raw


def load_user_dataset(
    path,
    text_column="text",
    label_column="label",
    latitude_column="latitude",
    longitude_column="longitude",
    on_bad_rows="error",
    skipped_rows_path=None,
    gazetteer_countries=None,
    places_path=None,
    find_regions=True,
):
    """Read a user's posts file into the standard layout (see the module docstring for every rule).

    Args:
        path: a .csv, .tsv, .jsonl/.ndjson (optionally .gz) or .parquet file.
        text_column, label_column, latitude_column, longitude_column: column names in the file. A label or
            coordinate column under its default name may be absent; under any other name it must exist.
            `label_column=None` ignores labels and labels posts by their nearest GeoNames city.
        on_bad_rows: "error" raises one ValueError summarising every malformed row; "skip" leaves them out.
        skipped_rows_path: where "skip" writes the skipped rows as JSONL {line, reason, row}; default
            `<path>.skipped.jsonl`. Written only when a row is skipped.
        gazetteer_countries: ISO alpha-2 code(s) restricting the nearest-city labelling (coordinates only).
        places_path: a places file (see `load_places_file`) mapping labels to coordinates.
        find_regions: look for labels spread over regions and give them their region's population (a GeoNames
            search). False when the caller keeps only the posts, as train.py does with the evaluation file.

    Returns:
        (dataset, places): a `datasets.Dataset` with columns text, label (ClassLabel, names sorted), latitude,
        longitude (float64) and source_line (int64), in file order; and a list of dicts {label (int), name,
        latitude, longitude, n_posts[, population]}, one per class in label order (population: the places file's,
        or a region label's, see the module docstring).
    """
    if on_bad_rows not in ("error", "skip"):
        raise ValueError(f"on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
    path = Path(path)
    columns, rows = read_rows(path)
    check_distinct_columns({"text": text_column, "label": label_column, "latitude": latitude_column,
                            "longitude": longitude_column})
    check_column_names(path, columns, {text_column: "text", label_column: "label", latitude_column: "latitude",
                                       longitude_column: "longitude"})
    if text_column not in columns:
        raise ValueError(f"{path}: text column {text_column!r} not found; the file has columns {columns}")
    has_label = _column_present(columns, "label", label_column)
    has_latitude = _column_present(columns, "latitude", latitude_column)
    coordinate_columns = f"{latitude_column!r} and {longitude_column!r}"
    if has_latitude != _column_present(columns, "longitude", longitude_column):
        raise ValueError(f"{path}: give both {coordinate_columns} columns or neither; the file has {columns}")
    if not has_label and not has_latitude:
        raise ValueError(f"{path}: found neither a label column {label_column!r} nor coordinate columns {coordinate_columns}")
    if not has_label and places_path is not None:
        raise ValueError(f"{path}: places_path maps labels to coordinates, but there is no label column {label_column!r}")
    if has_label and gazetteer_countries is not None:
        raise ValueError("gazetteer_countries restricts the nearest-city labelling of unlabelled data; this data has labels")
    if has_label and not has_latitude and places_path is None:
        raise ValueError(
            f"{path}: labels without coordinates: pass places_path=<file with columns label, name, latitude, "
            "longitude> (train.py --places-file) to give each label its coordinates"
        )
    file_places = load_places_file(places_path) if places_path is not None else None
    known_labels = {place["label"] for place in file_places} if file_places else None
    used_columns = {text_column, label_column, latitude_column, longitude_column}
    ignored = [column for column in columns if column not in used_columns]
    if ignored:
        logger.info("%s: ignoring columns %s", path, ignored)

    checks = [("text", text_column, _text)]
    if has_label:
        checks.append(("label", label_column, _label_reader(path, label_column)))
    if has_latitude:
        checks.append(("latitude", latitude_column, lambda value: _coordinate(value, "latitude", 90.0)))
        checks.append(("longitude", longitude_column, lambda value: _coordinate(value, "longitude", 180.0)))
    kept = {key: [] for key, _, _ in checks}
    kept["source_line"] = []
    hint = (". Fix them, or leave them out with on_bad_rows='skip' (train.py --on-bad-rows skip); each is then listed "
            "in a report file")
    bad_rows = _BadRows(path, on_bad_rows, skipped_rows_path, hint=hint)
    try:
        for line, values, problem, raw in rows:
            parsed, problems = _check_fields(values, checks) if values is not None else ({}, [problem])
            if known_labels is not None and "label" in parsed and parsed["label"] not in known_labels:
                problems.append(f"label {parsed['label']!r} is not in the places file {places_path}")
            if problems:
                bad_rows.add(line, "; ".join(problems), raw)
                continue
            for key, value in parsed.items():
                kept[key].append(value)
            kept["source_line"].append(line)
    finally:
        bad_rows.close()
    bad_rows.finish()
    if not kept["text"]:
        raise ValueError(f"{path}: no valid rows ({bad_rows.count} malformed)")
    return _assemble(kept, file_places, gazetteer_countries, find_regions)


# A label is a region when more than this share of its posts lies beyond NEAREST_CITY_MAX_KM of its centre.
REGION_POST_SHARE = 0.1


def _region_label_populations(rows_of_label, latitudes, longitudes, coordinates):
    """{label: population} of the labels whose posts spread over a region (see the module docstring)."""
    labels = list(coordinates)
    centres = np.array([coordinates[label] for label in labels], dtype=np.float64)
    radii = np.array([
        np.quantile(haversine_km(latitudes[rows_of_label[label]], longitudes[rows_of_label[label]], *centre),
                    1.0 - REGION_POST_SHARE)
        for label, centre in zip(labels, centres)])
    regions = np.flatnonzero(radii > NEAREST_CITY_MAX_KM)
    if not regions.size:
        return {}
    populations = region_populations(centres[:, 0], centres[:, 1], radii)
    logger.info("%d label(s) spread over regions (posts beyond %g km of their centre); their place-prior population "
                "is that of the GeoNames cities in each: %s", regions.size, NEAREST_CITY_MAX_KM,
                {labels[i]: int(populations[i]) for i in regions[:10]})
    return {labels[i]: float(populations[i]) for i in regions}


def _assemble(kept, file_places, gazetteer_countries, find_regions):
    """Turn validated columns into (Dataset, places) according to which of label / coordinates were given."""
    populations = {}
    if "label" not in kept:
        logger.info("no label column: labelling %d posts by their nearest GeoNames city", len(kept["text"]))
        kept["label"], coordinates = _gazetteer_places(kept["latitude"], kept["longitude"], gazetteer_countries)
        display_names = {name: name for name in coordinates}
    elif file_places is not None:
        coordinates = {place["label"]: (place["latitude"], place["longitude"]) for place in file_places}
        display_names = {place["label"]: place["name"] for place in file_places}
        populations = {place["label"]: place["population"] for place in file_places if "population" in place}
    else:
        rows_of_label = {}
        for row, label in enumerate(kept["label"]):
            rows_of_label.setdefault(label, []).append(row)
        latitudes, longitudes = np.asarray(kept["latitude"]), np.asarray(kept["longitude"])
        coordinates = {}
        for label, rows in rows_of_label.items():
            try:
                coordinates[label] = spherical_mean(latitudes[rows], longitudes[rows])
            except ValueError as error:
                raise ValueError(f"label {label!r}: {error}; give its coordinates with places_path") from None
        display_names = {label: label for label in coordinates}
        if find_regions:
            populations = _region_label_populations(rows_of_label, latitudes, longitudes, coordinates)
    if "latitude" not in kept:
        kept["latitude"] = [coordinates[label][0] for label in kept["label"]]
        kept["longitude"] = [coordinates[label][1] for label in kept["label"]]

    class_label = datasets.ClassLabel(names=sorted(coordinates))
    label_ids = [class_label.str2int(label) for label in kept["label"]]
    n_posts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=class_label.num_classes)
    if (n_posts == 0).any():
        logger.info("%d place(s) of the places file have no posts; they stay as classes", int((n_posts == 0).sum()))
    features = post_features(class_label.names)
    features["source_line"] = datasets.Value("int64")
    columns = {name: label_ids if name == "label" else kept[name] for name in features}
    dataset = datasets.Dataset.from_dict(columns, features=features)
    places = [
        {"label": label_id, "name": display_names[label], "latitude": float(coordinates[label][0]),
         "longitude": float(coordinates[label][1]), "n_posts": int(n_posts[label_id]),
         **({"population": populations[label]} if label in populations else {})}
        for label_id, label in enumerate(class_label.names)
    ]
    return dataset, places
