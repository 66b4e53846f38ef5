"""Wikivoyage destination bylines: geotagged text for CSP-style location pre-training.

Raw file: `<raw_dir>/wikivoyage_destination_bylines/wikivoyage_destinations.jsonl` (one destination a line:
{title, lat, lon, byline, edges}). Output: one split `train` in file order with columns
`text, title, latitude, longitude, has_byline`.

`text` is the byline. 26 of the 17,428 destinations have an empty byline; dropping them would lose real
geotagged places, so their `text` is the title instead and `has_byline` is False, which lets a user filter
them out (`dataset.filter(lambda row: row["has_byline"])`) when a title alone is too thin as content.
The link graph (`edges`) is not used by the pre-training objective and is not kept.
"""

import math
from contextlib import closing
from pathlib import Path

import datasets

from .file_rows import json_object, record_lines


RAW_FOLDER = "wikivoyage_destination_bylines"
RAW_FILE = "wikivoyage_destinations.jsonl"

FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "title": datasets.Value("string"),
        "latitude": datasets.Value("float64"),
        "longitude": datasets.Value("float64"),
        "has_byline": datasets.Value("bool"),
    }
)


def dataset_card():
    """Dataset card fields for `common.write_dataset`."""
    return {
        "pretty_name": "Wikivoyage destination bylines (geotagged)",
        "license": "cc-by-sa-3.0",
        "description": (
            "17,428 Wikivoyage destinations worldwide with coordinates and a one-sentence byline, for self-supervised "
            "(CSP-style) location pre-training; not an evaluation set. `text` is the byline, or the title for the 26 "
            "destinations without one (`has_byline` = False)."
        ),
        "source": "GitHub wginsberg/wikivoyage-map, commit 88ee2a33, public/nodes/*.json (2024 Wikivoyage dump)",
        "license_notes": (
            "Text from Wikivoyage (https://www.wikivoyage.org), CC BY-SA 3.0: attribute Wikivoyage and share alike."
        ),
        "task_categories": ["feature-extraction"],
        "language": ["en"],
        "tags": ["geolocation", "geotagged-text", "csp", "location-pretraining"],
        "citation": (
            "@misc{wikivoyage_map,\n"
            "  title={wikivoyage-map: Wikivoyage destinations with coordinates and bylines},\n"
            "  author={{wginsberg} (GitHub user)},\n"
            "  howpublished={https://github.com/wginsberg/wikivoyage-map, commit 88ee2a33},\n"
            "  note={Built from a 2024 Wikivoyage dump; text CC BY-SA 3.0, Wikivoyage contributors}\n"
            "}"
        ),
    }


def _coordinate(record, key, low, high, where):
    value = record.get(key)
    if value is None:
        raise ValueError(f"{where}: missing '{key}'")
    # JSON true/false are ints to Python; a boolean coordinate is a broken record, not 0/1 degrees.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: '{key}' must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: '{key}' is not finite ({value!r})")
    if not low <= value <= high:
        raise ValueError(f"{where}: '{key}' = {value!r} is outside [{low}, {high}]")
    return value


def parse_destination(line, where):
    """One JSONL line -> a row dict; `where` ("file:line") prefixes every error message."""
    record, problem = json_object(line)
    if problem:
        raise ValueError(f"{where}: {problem}")
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"{where}: missing or empty 'title'")
    byline = record.get("byline")
    if byline is None:
        byline = ""
    if not isinstance(byline, str):
        raise ValueError(f"{where}: 'byline' must be a string, got {type(byline).__name__}")
    has_byline = bool(byline.strip())
    return {
        "text": byline if has_byline else title,
        "title": title,
        "latitude": _coordinate(record, "lat", -90.0, 90.0, where),
        "longitude": _coordinate(record, "lon", -180.0, 180.0, where),
        "has_byline": has_byline,
    }


def read_destinations(path):
    """Parse the JSONL file into column lists in file order; blank lines are skipped (those between destinations
    counted in the log), other malformed lines raise."""
    path = Path(path)
    columns = {name: [] for name in FEATURES}
    with closing(record_lines(path, blank_lines_inside="skip")) as lines:
        for line_number, line in lines:
            row = parse_destination(line, f"{path}:{line_number}")
            for name, value in row.items():
                columns[name].append(value)
    if not columns["text"]:
        raise ValueError(f"{path}: no destinations found")
    return columns


def build(raw_dir):
    """Build the Wikivoyage pre-training corpus: DatasetDict with one split `train` (file order)."""
    path = Path(raw_dir) / RAW_FOLDER / RAW_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Wikivoyage bylines not found at {path} (raw_dir should be the shared data folder)")
    columns = read_destinations(path)
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns, features=FEATURES)})
