"""YFCC100M x iNaturalist-2017 species photos: the location-prior task (CSP downstream, location only).

Raw file: `<raw_dir>/yfcc_inat2017_geolocated/yfcc100m_geolocated_inat2017species.csv` (36,143 photos,
4,472 species; header `yfcc100m ID, yfcc100m line number, label, latitude, longitude, Flickr URL, mmcommons URL`).
Rows: `yfcc_id, latitude, longitude, label` with `label` a ClassLabel over the species names sorted
alphabetically (the same class ids in every split).

Splits (all deterministic, nothing random about the train/test cut):
- `train` / `test`: within each species, photos are ordered by md5(yfcc id); the first
  min(floor(0.2 n + 0.5), n - 1) go to `test`, the rest to `train`. So every species keeps at least one
  training photo, and every test species is a training species; the 225 species with a single photo are in
  `train` only. Rows keep file order inside each split.
- `train_5pct`, `train_10pct`, `train_20pct`: the CSP few-label subsets of `train`, stratified per species:
  species in sorted label order each permute their train rows with one `numpy.random.default_rng(0)` shared
  across species and keep the first max(1, floor(p n + 0.5)) rows. The subsets are nested (5% within 10%
  within 20%) and keep train order. 100% is `train` itself.
  Every species has at most 10 photos (at most 8 in train), so floor(p n + 0.5) <= 1 for p <= 10%:
  `train_5pct` and `train_10pct` both hold exactly one photo per species here (the same photos).
"""

import hashlib
import math
from pathlib import Path

import datasets
import numpy as np

from .file_rows import read_rows


RAW_FOLDER = "yfcc_inat2017_geolocated"
RAW_FILE = "yfcc100m_geolocated_inat2017species.csv"
ID_COLUMN, LABEL_COLUMN, LATITUDE_COLUMN, LONGITUDE_COLUMN = "yfcc100m ID", "label", "latitude", "longitude"
TEST_FRACTION = 0.2
FEW_LABEL_FRACTIONS = {"train_5pct": 0.05, "train_10pct": 0.10, "train_20pct": 0.20}
FEW_LABEL_SEED = 0


def dataset_card():
    """Dataset card fields for `common.write_dataset`."""
    return {
        "pretty_name": "YFCC100M iNat2017 species location prior",
        "license": "other",
        "description": (
            "Location -> species presence prior task (CSP / geo-prior downstream, location only): 36,143 Flickr photos "
            "(metadata only) geolocated and labelled with 4,472 iNaturalist-2017 species. Deterministic per-species "
            "80/20 train/test split by md5 of the YFCC id, and nested CSP few-label subsets (5/10/20% of train, at "
            "least one photo per species, seed 0)."
        ),
        "source": "GitHub visipedia/fg_geo, data/yfcc100m_geolocated_inat2017species.csv.zip (Chu et al. 2019)",
        "license_notes": (
            "YFCC100M media are Creative Commons under per-photo licenses; the source repository has no license file."
        ),
        "task_categories": ["tabular-classification"],
        "tags": ["geolocation", "location-prior", "species", "csp"],
        "citation": (
            "@inproceedings{chu2019geoaware,\n"
            "  title={Geo-Aware Networks for Fine-Grained Recognition},\n"
            "  author={Chu, Grace and Potetz, Brian and Wang, Weijun and Howard, Andrew and Song, Yang and Brucher, "
            "Fernando and Leung, Thomas and Adam, Hartwig},\n"
            "  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision Workshops},\n"
            "  year={2019}\n"
            "}\n"
            "@inproceedings{mai2023csp,\n"
            "  title={CSP: Self-Supervised Contrastive Spatial Pre-Training for Geospatial-Visual Representations},\n"
            "  author={Mai, Gengchen and Lao, Ni and He, Yutong and Song, Jiaming and Ermon, Stefano},\n"
            "  booktitle={International Conference on Machine Learning (ICML)},\n"
            "  year={2023}\n"
            "}"
        ),
    }


def _coordinate(text, name, low, high, where):
    if not text:
        raise ValueError(f"{where}: missing {name}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} is not finite ({text!r})")
    if not low <= value <= high:
        raise ValueError(f"{where}: {name} {value!r} is outside [{low}, {high}]")
    return value


def read_photos(path):
    """Parse and validate the CSV: lists of ids, species names, latitudes, longitudes in file order.

    Raises ValueError naming the file and line (the header is line 1) for a wrong field count, an empty id or
    species, a duplicated id, or a missing / non-numeric / non-finite / out-of-range coordinate.
    """
    path = Path(path)
    ids, species, latitudes, longitudes = [], [], [], []
    first_line_of_id = {}
    header, rows = read_rows(path)
    wanted = (ID_COLUMN, LABEL_COLUMN, LATITUDE_COLUMN, LONGITUDE_COLUMN)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ValueError(f"{path}:1: header {header} lacks column(s) {missing}")
    for line_number, values, problem, _ in rows:
        where = f"{path}:{line_number}"
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
        photo_id, label, latitude, longitude = (values[name].strip() for name in wanted)
        if not photo_id:
            raise ValueError(f"{where}: empty {ID_COLUMN!r}")
        if photo_id in first_line_of_id:
            raise ValueError(f"{where}: {ID_COLUMN} {photo_id!r} repeats line {first_line_of_id[photo_id]}")
        first_line_of_id[photo_id] = line_number
        if not label:
            raise ValueError(f"{where}: empty species label")
        ids.append(photo_id)
        species.append(label)
        latitudes.append(_coordinate(latitude, "latitude", -90.0, 90.0, where))
        longitudes.append(_coordinate(longitude, "longitude", -180.0, 180.0, where))
    if not ids:
        raise ValueError(f"{path}: no photos found")
    return ids, species, latitudes, longitudes


def _id_hash(photo_id):
    return int(hashlib.md5(photo_id.encode("utf-8")).hexdigest(), 16)


def split_train_test(ids, labels, test_fraction=TEST_FRACTION):
    """Boolean mask `is_test` per row: per class, the rows with the smallest md5(id) go to test (see module doc)."""
    labels = np.asarray(labels)
    is_test = np.zeros(labels.shape[0], dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        ordered = sorted(rows, key=lambda row: _id_hash(ids[row]))
        num_test = min(math.floor(test_fraction * len(rows) + 0.5), len(rows) - 1)
        is_test[ordered[:num_test]] = True
    return is_test


def few_label_subsets(labels, fractions=FEW_LABEL_FRACTIONS, seed=FEW_LABEL_SEED):
    """{subset name: sorted row indices}: nested per-class subsets with at least one row per class (see module doc)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = {name: [] for name in fractions}
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        permuted = rows[rng.permutation(rows.shape[0])]
        for name, fraction in fractions.items():
            chosen[name].append(permuted[: max(1, math.floor(fraction * rows.shape[0] + 0.5))])
    return {name: np.sort(np.concatenate(parts)) for name, parts in chosen.items()}


def build(raw_dir):
    """Build the location-prior task: DatasetDict with splits train, test, train_5pct, train_10pct, train_20pct."""
    path = Path(raw_dir) / RAW_FOLDER / RAW_FILE
    if not path.is_file():
        raise FileNotFoundError(f"YFCC iNat2017 CSV not found at {path} (raw_dir should be the shared data folder)")
    ids, species, latitudes, longitudes = read_photos(path)
    class_label = datasets.ClassLabel(names=sorted(set(species)))
    features = datasets.Features(
        {
            "yfcc_id": datasets.Value("string"),
            "latitude": datasets.Value("float64"),
            "longitude": datasets.Value("float64"),
            "label": class_label,
        }
    )
    label_ids = np.asarray([class_label.str2int(name) for name in species], dtype=np.int64)
    columns = {
        "yfcc_id": np.asarray(ids, dtype=object),
        "latitude": np.asarray(latitudes, dtype=np.float64),
        "longitude": np.asarray(longitudes, dtype=np.float64),
        "label": label_ids,
    }

    def split_of(rows):
        selected = {name: values[rows].tolist() for name, values in columns.items()}
        return datasets.Dataset.from_dict(selected, features=features)

    is_test = split_train_test(ids, label_ids)
    train_rows = np.flatnonzero(~is_test)
    splits = {"train": split_of(train_rows), "test": split_of(np.flatnonzero(is_test))}
    for name, rows in few_label_subsets(label_ids[train_rows]).items():
        splits[name] = split_of(train_rows[rows])
    return datasets.DatasetDict(splits)
