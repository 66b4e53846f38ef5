"""Validation of user inputs: posts and galleries of places.

A gallery is any of: a list of `{"name", "latitude", "longitude"}` dicts, a table with those columns (pandas
DataFrame, `datasets.Dataset`, dict of columns), or the strings `"geonames"` / `"geonames:CC"`. Errors name the
offending row, so a bad row in a 30,000-place file is found without a debugger.
"""

import hashlib
import logging
import math
import numbers
from collections.abc import Mapping, Sequence

from .place_prior import place_population

PLACE_FIELDS = ("name", "latitude", "longitude")
logger = logging.getLogger(__name__)


def check_posts_container(posts) -> None:
    """Refuse containers whose iteration is not the posts in order: iterating a dict or a table gives its keys or
    column names, a set has no order to match the results to."""
    kind = type(posts).__name__
    if hasattr(posts, "columns") and hasattr(posts, "to_dict"):  # pandas.DataFrame
        raise ValueError(f"posts must be a list of strings, got a {kind}: pass its text column (e.g. frame['text'])")
    if isinstance(posts, Mapping):
        raise ValueError(f"posts must be a list of strings, got a {kind} (iterating it gives its keys): pass the "
                         "posts themselves (e.g. list(mapping.values()) or a batch's 'text' column)")
    if isinstance(posts, (set, frozenset)):
        raise ValueError(f"posts must be a list of strings, got a {kind}: it has no order to match the results to; "
                         "pass a list")


def validate_texts(texts, allow_blank: bool = False, first_index: int = 0) -> list[str]:
    """Return `texts` as a list of non-empty strings; a single string is one post.

    `allow_blank=True` lets empty / whitespace-only strings through (they are encoded as the special tokens alone):
    for evaluation protocols that must score every post of a fixed query set. Errors number the posts from
    `first_index` (the pipeline checks a stream group by group and names posts by their place in the whole input)."""
    if isinstance(texts, str):
        texts = [texts]
    if texts is None or not isinstance(texts, Sequence) and not hasattr(texts, "__iter__"):
        raise ValueError(f"posts must be a string or a list of strings, got {type(texts).__name__}")
    check_posts_container(texts)
    texts = list(texts)
    if not texts:
        raise ValueError("no posts given: the list of posts is empty")
    for index, text in enumerate(texts, start=first_index):
        if not isinstance(text, str):
            raise ValueError(f"post {index} is not a string (got {type(text).__name__}: {text!r})")
        if not allow_blank and not text.strip():
            raise ValueError(f"post {index} is empty or whitespace only")
    return texts


def check_coordinate(latitude, longitude, where: str) -> tuple[float, float]:
    """Validate one (latitude, longitude) pair in degrees and return it as floats."""
    if isinstance(latitude, bool) or isinstance(longitude, bool):  # float(True) is 1.0: a column mix-up, not a place
        raise ValueError(f"{where}: latitude/longitude must be numbers, got {latitude!r}, {longitude!r}")
    try:
        latitude, longitude = float(latitude), float(longitude)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: latitude/longitude must be numbers, got {latitude!r}, {longitude!r}") from None
    if not math.isfinite(latitude):
        raise ValueError(f"{where}: latitude is {latitude} (must be a finite number)")
    if not math.isfinite(longitude):
        raise ValueError(f"{where}: longitude is {longitude} (must be a finite number)")
    if not -90.0 <= latitude <= 90.0:
        raise ValueError(f"{where}: latitude {latitude} is outside [-90, 90]")
    if not -180.0 <= longitude <= 180.0:
        raise ValueError(f"{where}: longitude {longitude} is outside [-180, 180]")
    return latitude, longitude


def _rows_of_table(places) -> list[Mapping]:
    if hasattr(places, "to_dict") and hasattr(places, "columns"):  # pandas.DataFrame
        return places.to_dict(orient="records")
    if hasattr(places, "column_names") and hasattr(places, "to_list"):  # datasets.Dataset
        return places.to_list()
    if isinstance(places, Mapping):  # dict of columns
        if any(isinstance(value, str) or not hasattr(value, "__iter__") for value in places.values()):
            raise ValueError("places must be a list of places or a table of columns; this mapping holds single "
                             f"values (one place?): wrap it in a list, [{dict(places)!r}]")
        columns = {key: list(value) for key, value in places.items()}
        lengths = {len(value) for value in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"the columns of the places table have different lengths: {sorted(lengths)}")
        count = lengths.pop() if lengths else 0
        return [{key: value[i] for key, value in columns.items()} for i in range(count)]
    return list(places)


class ResolvedGallery(list):
    """A validated gallery that knows its fingerprint (resolved from a spec string once per process)."""

    fingerprint: str


_RESOLVED_SPECS: dict[str, ResolvedGallery] = {}


def _resolve_spec(places: str) -> ResolvedGallery:
    """The gallery of a spec string, validated and fingerprinted on first use: a one-post `geolocate` over the
    34k worldwide GeoNames places then costs the post's forward pass, not a re-validation of every place."""
    spec = places.strip()
    if not (spec == "geonames" or spec.startswith("geonames:")):
        raise ValueError(
            f"places={places!r}: a string must be 'geonames' or 'geonames:CC' (ISO country code); "
            "for a file of places, load it first (e.g. pandas.read_csv) and pass the table"
        )
    if spec not in _RESOLVED_SPECS:
        from .gazetteer import resolve_places_spec

        places_list = normalize_places(resolve_places_spec(spec), warn_shared_names=False)
        gallery = ResolvedGallery(places_list)
        gallery.fingerprint = places_fingerprint(places_list)
        _RESOLVED_SPECS[spec] = gallery
    cached = _RESOLVED_SPECS[spec]
    # A new list each call, so a caller that edits its gallery cannot edit the cache.
    resolved = ResolvedGallery(dict(place) for place in cached)
    resolved.fingerprint = cached.fingerprint
    return resolved


def resolve_gallery(places) -> ResolvedGallery:
    """`normalize_places`, fingerprinted: handed back to `normalize_places` unchanged, it is neither validated nor
    logged about again (one `geolocate` call passes its gallery through several steps)."""
    normalized = normalize_places(places)
    if isinstance(normalized, ResolvedGallery):
        return normalized
    gallery = ResolvedGallery(normalized)
    gallery.fingerprint = places_fingerprint(normalized)
    return gallery


def normalize_places(places, warn_shared_names: bool = True) -> list[dict]:
    """Validate a gallery and return it as a list of `{"name", "latitude", "longitude"}` dicts (extra keys kept).

    Places that share a name at different coordinates are logged (unless `warn_shared_names` is False: GeoNames has
    such towns): a model with the prompt location encoder tells places apart by name, so they score alike."""
    if places is None:
        raise ValueError("no places given")
    if isinstance(places, str):
        return _resolve_spec(places)
    if isinstance(places, ResolvedGallery) and _content_fingerprint(places) == places.fingerprint:
        return places  # validated before and not edited since (an edited one is validated again below)
    rows = _rows_of_table(places)
    if not rows:
        raise ValueError("the gallery of places is empty: give at least one place")
    normalized, first_index = [], {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"place {index} must be a mapping with name, latitude, longitude, got {row!r}")
        missing = [key for key in PLACE_FIELDS if key not in row or row[key] is None]
        if missing:
            raise ValueError(f"place {index} is missing {', '.join(missing)} (needs name, latitude, longitude)")
        name = row["name"]
        if isinstance(name, numbers.Integral) and not isinstance(name, bool):
            name = str(name)  # a code read as a number from a table (a ZIP code, a station id): its text is its name
        if not isinstance(name, str):
            raise ValueError(f"place {index}: name must be text, got {type(name).__name__} {name!r}")
        if not name.strip():
            raise ValueError(f"place {index}: name is empty ({name!r})")
        latitude, longitude = check_coordinate(row["latitude"], row["longitude"], f"place {index} ({name})")
        # Two equal places would be two classes that split one place's probability between them.
        earlier = first_index.setdefault((name, latitude, longitude), index)
        if earlier != index:
            raise ValueError(f"place {index} repeats place {earlier} ({name}, {latitude}, {longitude}): each place of "
                             "a gallery is a class; remove the copy")
        place = {**dict(row), "name": name, "latitude": latitude, "longitude": longitude}
        if "population" in place:
            place["population"] = place_population(place, index)
        normalized.append(place)
    if warn_shared_names:
        _log_shared_names(normalized)
    return normalized


def _log_shared_names(places) -> None:
    first_with_name, shared = {}, []
    for index, place in enumerate(places):
        earlier = first_with_name.setdefault(place["name"].strip().casefold(), index)
        if earlier != index:
            shared.append((earlier, index))
    if shared:
        earlier, index = shared[0]
        logger.warning("%d place(s) share a name with an earlier one at other coordinates, first place %d (%r) and "
                       "place %d (%r): a model with the prompt location encoder scores them alike; give each its own "
                       "name (e.g. with its region)", len(shared), index, places[index]["name"], earlier,
                       places[earlier]["name"])


def places_fingerprint(places: list[dict]) -> str:
    """A content hash of a gallery (names and coordinates), used as a cache key."""
    if isinstance(places, ResolvedGallery):
        return places.fingerprint
    return _content_fingerprint(places)


def _content_fingerprint(places) -> str:
    digest = hashlib.sha1()
    for place in places:
        digest.update(f"{place['name']}\x1f{place['latitude']!r}\x1f{place['longitude']!r}\x1e".encode())
    return digest.hexdigest()
