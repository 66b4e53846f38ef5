"""A place prior: how likely a post is to come from each place before its text is read.

Posts are written where people are. A few-shot model sees the same number of posts per place, so its calibrated
probabilities are p_balanced(place | post), proportional to the likelihood p(post | place). Bayes' rule with a prior
gives p(place | post) proportional to p_balanced(place | post) * prior(place) ** weight; weight 1 is the exact rule,
a smaller weight trusts the prior less. The prior a user always has is the population of each place from GeoNames;
the pool's label counts, which a few-shot user does not have, are not used.

`place_populations` takes a place's own `population` field when it has one (GeoNames galleries carry it; a places
file may have the column, where a blank cell means "not known"). Otherwise a place named like a GeoNames town of
5,000+ people within `NAME_MATCH_MAX_KM` is that town ("Memphis, TN" at the centre of Twitter's bounding box for
Memphis, 12 km from GeoNames' point, whose nearest entry is the suburb Bartlett; "Paris", whose nearest entry is the
district "Paris 04"); a place whose name matches none gets the population of the nearest GeoNames city of 15,000+
people within `NEAREST_CITY_MAX_KM`, and with no such city nearby it counts as a place of `DEFAULT_POPULATION`
people. A label that is a region (a state, a country: its posts spread farther than a town) is
not a point, and the city nearest its centre says nothing of how many people it holds; `region_populations` counts
the people of the cities in it instead (`datasets_scripts.user_data` uses it for such labels of a user's file).
"""

import math

import numpy as np

PLACE_PRIORS = ("population",)
# Farther than this from any city of 15,000+ people, a place is a smaller town (or a point that is not a city).
NEAREST_CITY_MAX_KM = 25.0
# A same-name GeoNames town this near is the place itself: a Twitter place's point, the centre of its bounding box,
# lies km from the city's point; a namesake elsewhere (Paris, Texas) lies farther.
NAME_MATCH_MAX_KM = 50.0
NAME_MATCH_MIN_POPULATION = 5000  # GeoNames' cities5000 table
# GeoNames' cities15000 threshold: what a place with no such city nearby is assumed to hold at most.
DEFAULT_POPULATION = 15000
_MIN_POPULATION = 1.0  # GeoNames lists a few seats with population 0; log(0) would rule them out entirely


def _non_negative_number(value, name) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {number}")
    return number


def population_value(value) -> float | None:
    """A population as a float >= 0, or None when it is not given (None, a blank string, NaN); ValueError else."""
    blank = isinstance(value, str) and not value.strip()
    if value is None or blank or (isinstance(value, float) and math.isnan(value)):
        return None
    return _non_negative_number(value, "population")


def check_prior_weight(weight) -> float:
    """The prior's exponent as a float; ValueError unless it is a finite number >= 0."""
    return _non_negative_number(weight, "place_prior_weight")


def place_population(place, index) -> float | None:
    """`population_value` of a gallery's place `index`; its ValueError names the place."""
    try:
        return population_value(place.get("population"))
    except ValueError as error:
        raise ValueError(f"place {index} ({place.get('name')}): {error}") from None


def _geonames_city_arrays():
    """(latitudes, longitudes, populations) of GeoNames' cities15000, as float64 arrays in table order."""
    from .gazetteer import city_arrays, load_geonames_cities

    return city_arrays(load_geonames_cities(), ("latitude", "longitude", "population"))


def place_populations(places, max_distance_km: float = NEAREST_CITY_MAX_KM) -> np.ndarray:
    """(C,) float64 population per place (validated places: dicts with name, latitude, longitude).

    A place's own `population` wins; else the nearest GeoNames town (cities5000) within `NAME_MATCH_MAX_KM` whose
    name is the place's name up to its first comma (accents and case aside); else the nearest GeoNames city
    (cities15000) when it lies within `max_distance_km`; else `DEFAULT_POPULATION`.
    """
    populations = np.array([np.nan if (own := place_population(place, index)) is None else own
                            for index, place in enumerate(places)], dtype=np.float64)
    unknown = np.flatnonzero(np.isnan(populations))
    if unknown.size:
        populations[unknown] = [_named_town_population(places[i]) for i in unknown]
    unknown = np.flatnonzero(np.isnan(populations))
    if unknown.size:
        from .gazetteer import haversine_km, nearest_city_indices

        city_latitudes, city_longitudes, city_populations = _geonames_city_arrays()
        latitudes = np.array([places[i]["latitude"] for i in unknown])
        longitudes = np.array([places[i]["longitude"] for i in unknown])
        nearest = nearest_city_indices(latitudes, longitudes, city_latitudes, city_longitudes)
        distances = haversine_km(latitudes, longitudes, city_latitudes[nearest], city_longitudes[nearest])
        populations[unknown] = np.where(distances <= max_distance_km, city_populations[nearest], DEFAULT_POPULATION)
    return populations


def _named_town_population(place) -> float:
    """The population of the nearest same-name GeoNames town within `NAME_MATCH_MAX_KM`, else NaN."""
    from .gazetteer import ascii_fold, cities_by_name, haversine_km

    latitudes, longitudes, town_populations, rows_by_name = cities_by_name(NAME_MATCH_MIN_POPULATION)
    name = ascii_fold(str(place["name"]).split(",")[0]).strip()
    rows = rows_by_name.get(name) if name else None  # a name in another script folds to ""
    if not rows:
        return np.nan
    distances = haversine_km(place["latitude"], place["longitude"], latitudes[rows], longitudes[rows])
    nearest = int(np.argmin(distances))
    return float(town_populations[rows[nearest]]) if distances[nearest] <= NAME_MATCH_MAX_KM else np.nan


def region_populations(centre_latitudes, centre_longitudes, radii_km) -> np.ndarray:
    """(C,) people of each label's region: the summed population of the GeoNames cities (cities15000) nearer to its
    centre than to any other label's centre (a Voronoi cell of the label set) and within `radii_km` of it (at least
    `NEAREST_CITY_MAX_KM`); `DEFAULT_POPULATION` where no such city lies. Every label of the set must be given, since
    each city counts for its nearest label only.
    """
    from .gazetteer import haversine_km, nearest_city_indices

    centre_latitudes = np.asarray(centre_latitudes, dtype=np.float64).reshape(-1)
    centre_longitudes = np.asarray(centre_longitudes, dtype=np.float64).reshape(-1)
    radii_km = np.maximum(np.asarray(radii_km, dtype=np.float64).reshape(-1), NEAREST_CITY_MAX_KM)
    if not centre_latitudes.shape == centre_longitudes.shape == radii_km.shape:
        raise ValueError(f"region_populations: {centre_latitudes.size} latitudes, {centre_longitudes.size} "
                         f"longitudes and {radii_km.size} radii; give one of each per label")
    city_latitudes, city_longitudes, city_populations = _geonames_city_arrays()
    label_of_city = nearest_city_indices(city_latitudes, city_longitudes, centre_latitudes, centre_longitudes)
    distances = haversine_km(city_latitudes, city_longitudes, centre_latitudes[label_of_city],
                             centre_longitudes[label_of_city])
    inside = distances <= radii_km[label_of_city]
    populations = np.bincount(label_of_city[inside], weights=city_populations[inside],
                              minlength=centre_latitudes.size)
    return np.where(populations > 0, populations, DEFAULT_POPULATION)


def log_place_prior(places, kind: str = "population", weight: float = 1.0) -> np.ndarray:
    """(C,) log of the normalised prior raised to `weight`: weight * log(prior) - log(sum(prior ** weight))."""
    if kind not in PLACE_PRIORS:
        raise ValueError(f"place prior {kind!r} is not one of {list(PLACE_PRIORS)}")
    check_prior_weight(weight)
    log_prior = weight * np.log(np.maximum(place_populations(places), _MIN_POPULATION))
    return log_prior - np.logaddexp.reduce(log_prior)

