"""Shared pieces of the task builders: class filtering, the dataset layout, the Parquet writer and the dataset card.

A geolocation task is a `datasets.DatasetDict` with splits
- `pool`, `query`: columns text (string), label (ClassLabel, names = place names sorted by name), latitude, longitude
  (float64, the post's own coordinates);
- `places`: one row per class: label (int64), name, latitude, longitude (the place's coordinates), n_pool.
"""

import hashlib
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

MIN_POOL_POSTS = 20
MIN_QUERY_POSTS = 3
PLACES_SPLIT = "places"
# Fixed writer options: the same table always gives the same bytes (for a given pyarrow version).
_PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 9,
    "row_group_size": 100_000,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


def post_features(label_names):
    """Features of the `pool` and `query` splits for the given class names."""
    return datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(label_names)),
            "latitude": datasets.Value("float64"),
            "longitude": datasets.Value("float64"),
        }
    )


PLACES_FEATURES = datasets.Features(
    {
        "label": datasets.Value("int64"),
        "name": datasets.Value("string"),
        "latitude": datasets.Value("float64"),
        "longitude": datasets.Value("float64"),
        "n_pool": datasets.Value("int64"),
    }
)


def make_geolocation_task(pool, query, places, min_pool_posts=MIN_POOL_POSTS, min_query_posts=MIN_QUERY_POSTS):
    """Filter classes and lay out a task as a DatasetDict(pool, query, places).

    Args:
        pool, query: pandas DataFrames with columns text, place_key, latitude, longitude, in the order the rows
            should keep (file order). `place_key` identifies a class (e.g. a GeoNames id).
        places: pandas DataFrame indexed by place_key with columns name, latitude, longitude.
        min_pool_posts, min_query_posts: a class is kept when it has at least this many pool AND query posts
            (counted once, before any filtering, so the rule is applied to both sides at the same time).

    Labels are the kept classes sorted by name (then by key, should two keys ever share a name: which raises).
    """
    for split_name, frame in (("pool", pool), ("query", query)):
        missing = {"text", "place_key", "latitude", "longitude"} - set(frame.columns)
        if missing:
            raise ValueError(f"{split_name} frame lacks columns {sorted(missing)}")
        unknown = sorted(set(frame["place_key"]) - set(places.index), key=str)
        if unknown:
            raise ValueError(f"{split_name} rows use place keys absent from the places table: {unknown[:5]}")
    pool_counts = pool["place_key"].value_counts()
    query_counts = query["place_key"].value_counts()
    kept_keys = [
        key
        for key in pool_counts.index
        if pool_counts[key] >= min_pool_posts and query_counts.get(key, 0) >= min_query_posts
    ]
    kept_places = places.loc[kept_keys]
    finite = np.isfinite(kept_places[["latitude", "longitude"]].to_numpy(dtype=np.float64)).all(axis=1)
    no_coordinates = kept_places.index[~finite]
    if len(no_coordinates):
        raise ValueError(f"kept classes without finite coordinates: {list(no_coordinates)}")
    duplicated = kept_places["name"][kept_places["name"].duplicated(keep=False)]
    if len(duplicated):
        raise ValueError(f"two kept classes share the place name(s) {sorted(set(duplicated))}: names must be unique")
    kept_places = kept_places.assign(_key=[str(key) for key in kept_places.index]).sort_values(["name", "_key"])
    label_of_key = {key: label for label, key in enumerate(kept_places.index)}
    features = post_features(kept_places["name"].tolist())

    def to_split(frame, split_name):
        frame = frame[frame["place_key"].isin(label_of_key)]
        blank = np.flatnonzero(frame["text"].str.strip().eq("").to_numpy())
        if blank.size:
            # Kept, as the protocol's sizes count them: geolocate refuses them unless allow_blank=True.
            logger.warning("%s: %d post(s) with empty text kept (rows %s of the split)", split_name, blank.size,
                           blank[:10].tolist())
        return datasets.Dataset.from_dict(
            {
                "text": frame["text"].tolist(),
                "label": [label_of_key[key] for key in frame["place_key"]],
                "latitude": frame["latitude"].astype(np.float64).tolist(),
                "longitude": frame["longitude"].astype(np.float64).tolist(),
            },
            features=features,
        )

    places_split = datasets.Dataset.from_dict(
        {
            "label": list(range(len(kept_places))),
            "name": kept_places["name"].tolist(),
            "latitude": kept_places["latitude"].astype(np.float64).tolist(),
            "longitude": kept_places["longitude"].astype(np.float64).tolist(),
            "n_pool": [int(pool_counts[key]) for key in kept_places.index],
        },
        features=PLACES_FEATURES,
    )
    return datasets.DatasetDict({"pool": to_split(pool, "pool"), "query": to_split(query, "query"),
                                 PLACES_SPLIT: places_split})


def task_statistics(dataset_dict):
    """Counts for the dataset card: classes, rows per split, posts per class (min / median / max) per split."""
    statistics = {"splits": {}}
    for split_name, split in dataset_dict.items():
        if split_name == PLACES_SPLIT:
            statistics["places"] = split.num_rows
            continue
        entry = {"rows": split.num_rows}
        label_feature = split.features.get("label")
        if isinstance(label_feature, datasets.ClassLabel):
            statistics["classes"] = label_feature.num_classes
            counts = np.bincount(np.asarray(split["label"], dtype=np.int64), minlength=label_feature.num_classes)
            present = counts[counts > 0]
            entry["classes_present"] = int(present.size)
            if present.size:
                entry["posts_per_class"] = {
                    "min": int(present.min()), "median": float(np.median(present)), "max": int(present.max())
                }
        statistics["splits"][split_name] = entry
    return statistics


def render_statistics_table(statistics):
    """A markdown table of `task_statistics` output: one row per split."""
    places_note = f"; places table: {statistics['places']:,} rows." if "places" in statistics else "."
    lines = [f"Classes: {statistics.get('classes', 'n/a')}{places_note}"]
    if statistics["splits"]:
        lines += ["", "| split | rows | classes present | posts per class (min / median / max) |", "|---|---:|---:|---|"]
    for split_name, entry in statistics["splits"].items():
        per_class = entry.get("posts_per_class")
        per_class_text = f"{per_class['min']} / {per_class['median']:g} / {per_class['max']}" if per_class else "n/a"
        lines.append(f"| {split_name} | {entry['rows']:,} | {entry.get('classes_present', 'n/a')} | {per_class_text} |")
    return "\n".join(lines)


README_STATS_BEGIN = "<!-- task statistics: written by `python -m datasets_scripts stats --all --write-readme README.md` -->"
README_STATS_END = "<!-- end of task statistics -->"


def render_task_summary_table(statistics_by_task):
    """One markdown row per task (classes, pool and query sizes, pool posts per class) from `task_statistics`."""
    lines = [
        "| task | classes | pool posts | query posts | pool posts per class (min / median / max) |",
        "|---|---:|---:|---:|---|",
    ]
    for task_name, statistics in statistics_by_task.items():
        pool, query = statistics["splits"]["pool"], statistics["splits"]["query"]
        per_class = pool["posts_per_class"]
        lines.append(
            f"| `{task_name}` | {statistics['classes']} | {pool['rows']:,} | {query['rows']:,} | "
            f"{per_class['min']} / {per_class['median']:g} / {per_class['max']} |"
        )
    return "\n".join(lines)


def replace_between_markers(text, begin_marker, end_marker, content):
    """`text` with what lies between the two marker lines replaced by `content` (both markers must be there)."""
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        raise ValueError(f"the text has no block {begin_marker!r} ... {end_marker!r}")
    return text[: begin + len(begin_marker)] + "\n" + content + "\n" + text[end:]


def text_between_markers(text, begin_marker, end_marker):
    """What `replace_between_markers` put between the markers."""
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        raise ValueError(f"the text has no block {begin_marker!r} ... {end_marker!r}")
    return text[begin + len(begin_marker): end].strip("\n")


def replace_readme_statistics(readme_text, table):
    """`readme_text` with the task statistics block replaced by `table`."""
    return replace_between_markers(readme_text, README_STATS_BEGIN, README_STATS_END, table)


def readme_statistics(readme_text):
    """The task statistics table of a README (the inverse of `replace_readme_statistics`)."""
    return text_between_markers(readme_text, README_STATS_BEGIN, README_STATS_END)


def _arrow_table(dataset):
    # with_format("arrow")[:] applies any indices mapping (select/shuffle) so the file holds exactly these rows.
    table = dataset.with_format("arrow")[:]
    features_metadata = json.dumps({"info": {"features": dataset.features.to_dict()}}, sort_keys=True)
    return table.replace_schema_metadata({"huggingface": features_metadata})


def _yaml_scalar(value):
    # JSON strings are valid YAML scalars, and quoting keeps colons or hashes in values from breaking the card.
    return json.dumps(str(value), ensure_ascii=False)


def _card_text(split_names, card, statistics):
    data_splits = [name for name in split_names if name != PLACES_SPLIT]
    yaml_lines = ["---", "configs:"]
    if data_splits:
        yaml_lines += ["- config_name: default", "  data_files:"]
        for name in data_splits:
            yaml_lines += [f"  - split: {name}", f"    path: {name}.parquet"]
    if PLACES_SPLIT in split_names:
        yaml_lines += ["- config_name: places", "  data_files:"]
        yaml_lines += [f"  - split: {PLACES_SPLIT}", f"    path: {PLACES_SPLIT}.parquet"]
        if not data_splits:
            # A places-only dataset (a gazetteer gallery): `load_dataset(folder)` returns the places.
            yaml_lines.append("  default: true")
    yaml_lines.append(f"license: {_yaml_scalar(card.get('license', 'other'))}")
    yaml_lines.append(f"pretty_name: {_yaml_scalar(card['pretty_name'])}")
    yaml_lines.append("task_categories:")
    yaml_lines += [f"- {_yaml_scalar(category)}" for category in card.get("task_categories", ["text-classification"])]
    for key in ("language", "tags"):
        if card.get(key):
            yaml_lines.append(f"{key}:")
            yaml_lines += [f"- {_yaml_scalar(value)}" for value in card[key]]
    yaml_lines.append("---")
    body = [
        f"# {card['pretty_name']}",
        "",
        card.get("description", "").strip(),
        "",
        "## Source",
        "",
        card.get("source", "").strip(),
        "",
        "## Statistics",
        "",
        render_statistics_table(statistics),
        "",
        "## License",
        "",
        card.get("license_notes", card.get("license", "other")).strip(),
        "",
        "## Citation",
        "",
        "```bibtex",
        card.get("citation", "").strip(),
        "```",
        "",
    ]
    return "\n".join(yaml_lines) + "\n\n" + "\n".join(body)


def write_dataset(dataset_dict, output_dir, card):
    """Write a DatasetDict as `{split}.parquet` files plus a README.md dataset card; returns the output folder.

    Args:
        dataset_dict: splits to write; a split named `places` becomes its own config.
        output_dir: folder to create or overwrite; it may not hold other `.parquet` files (ValueError).
        card: dict with pretty_name (required), description, source, license (SPDX id or "other"),
            license_notes, citation, task_categories, language, tags.

    Rows keep their order and no timestamps are written, so a rebuild gives byte-identical files.
    `datasets.load_dataset(output_dir)` then returns the posts, `load_dataset(output_dir, "places")` the places.
    """
    if "pretty_name" not in card:
        raise ValueError("the dataset card needs a 'pretty_name'")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # A leftover split from another build would be read back as part of this dataset.
    foreign = sorted(path.name for path in output_dir.glob("*.parquet") if path.stem not in dataset_dict)
    if foreign:
        raise ValueError(f"{output_dir} holds Parquet files of no split of this dataset: {foreign}; use an empty folder")
    empty = [split_name for split_name, split in dataset_dict.items() if split.num_rows == 0]
    if empty:
        # datasets' Parquet loader cannot read a file whose only row group is empty.
        raise ValueError(f"split(s) {empty} have no rows; nothing to write")
    for split_name, split in dataset_dict.items():
        pq.write_table(_arrow_table(split), output_dir / f"{split_name}.parquet", **_PARQUET_OPTIONS)
    card_text = _card_text(list(dataset_dict.keys()), card, task_statistics(dataset_dict))
    (output_dir / "README.md").write_text(card_text, encoding="utf-8")
    return output_dir


def read_dataset(output_dir):
    """Read a folder written by `write_dataset` back as a DatasetDict of every split (places included), offline."""
    output_dir = Path(output_dir)
    splits = {}
    for path in sorted(output_dir.glob("*.parquet")):
        # The schema's "huggingface" metadata carries the features, ClassLabel names included.
        splits[path.stem] = datasets.Dataset(pq.read_table(path))
    if not splits:
        raise ValueError(f"no .parquet files in {output_dir}")
    return datasets.DatasetDict(splits)


def file_digest(path):
    """sha256 hex digest of a file (to check byte-identical rebuilds)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

