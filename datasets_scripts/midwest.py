"""US South / Midwest tweets, June 2017: tasks `midwest-2017` and `midwest-2017-meta`.

Protocol (DESIGN.md section 4): tweets whose Twitter place has place_type == "city"; label and name =
place_full_name ("Omaha, NE"); a post's and its label's coordinates are the centre of the place's bounding box
(mid of min/max longitude and latitude). Users are split, never tweets: a user goes to the pool when
int(md5(user_id).hexdigest(), 16) % 100 < 70, else to the query. The `-meta` variant appends
" | user location: <user_location>" and " | time zone: <user_time_zone>", each only when the field is non-empty
(None, "" and whitespace-only count as empty). Classes need >= 20 pool and >= 3 query posts.
"""

import hashlib
import math
from contextlib import closing
from pathlib import Path

import pandas as pd

from .common import make_geolocation_task
from .file_rows import json_object, record_lines


FILE_NAME = "tweets_geo_2017.jsonl"
POOL_PERCENT = 70
_REQUIRED_FIELDS = ("id", "text", "user_id", "place_full_name", "place_type", "place_bbox")


def user_goes_to_pool(user_id):
    """The deterministic user split: md5 of the user id (as a string) modulo 100 below 70 -> pool."""
    return int(hashlib.md5(str(user_id).encode("utf-8")).hexdigest(), 16) % 100 < POOL_PERCENT


def bbox_centre(bbox, where):
    """(latitude, longitude) of the centre of a Twitter place_bbox given as [lon, lat] corners."""
    try:
        longitudes = [float(corner[0]) for corner in bbox]
        latitudes = [float(corner[1]) for corner in bbox]
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{where}: place_bbox is not a list of [longitude, latitude] corners: {bbox!r}") from None
    if not longitudes or not all(math.isfinite(value) for value in longitudes + latitudes):
        raise ValueError(f"{where}: place_bbox has no corners or a non-finite corner: {bbox!r}")
    latitude = (min(latitudes) + max(latitudes)) / 2.0
    longitude = (min(longitudes) + max(longitudes)) / 2.0
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError(f"{where}: place_bbox centre out of range ({latitude}, {longitude})")
    return latitude, longitude


def _with_user_metadata(text, user_location, user_time_zone):
    if user_location and user_location.strip():
        text += f" | user location: {user_location}"
    if user_time_zone and user_time_zone.strip():
        text += f" | time zone: {user_time_zone}"
    return text


def read_city_tweets(path, with_user_metadata=False):
    """City-level tweets of the JSONL file -> DataFrame id, user_id, text, place_key, latitude, longitude, line.

    A line that is not a JSON object with the needed fields, or a city tweet with a bad bounding box, raises
    ValueError naming the file and line. Blank lines are skipped, as the package's other JSONL readers skip them;
    those between tweets are counted in the log.
    """
    path = Path(path)
    rows = []
    with closing(record_lines(path, blank_lines_inside="skip")) as lines:
        for line_number, line in lines:
            where = f"{path}, line {line_number}"
            tweet, problem = json_object(line)
            if problem:
                raise ValueError(f"{where}: {problem}")
            missing = [field for field in _REQUIRED_FIELDS if field not in tweet]
            if missing:
                raise ValueError(f"{where}: missing field(s) {missing}")
            if tweet["place_type"] != "city":
                continue
            if not isinstance(tweet["text"], str) or not tweet["place_full_name"]:
                raise ValueError(f"{where}: a city tweet needs a text and a place_full_name")
            latitude, longitude = bbox_centre(tweet["place_bbox"], where)
            text = tweet["text"]
            if with_user_metadata:
                text = _with_user_metadata(text, tweet.get("user_location"), tweet.get("user_time_zone"))
            rows.append(
                {
                    "id": str(tweet["id"]),
                    "user_id": str(tweet["user_id"]),
                    "text": text,
                    "place_key": tweet["place_full_name"],
                    "latitude": latitude,
                    "longitude": longitude,
                    "line": line_number,
                }
            )
    return pd.DataFrame(rows, columns=["id", "user_id", "text", "place_key", "latitude", "longitude", "line"])


def build_frames(raw_dir, with_user_metadata=False):
    """Pool and query frames (with id, user_id and line provenance) and the places table, before class filtering."""
    tweets = read_city_tweets(Path(raw_dir) / "midwest_tweets_2017" / FILE_NAME, with_user_metadata)
    # One bbox per place in this data; should a place ever come with several, the first one seen is its label's.
    places = (
        tweets.drop_duplicates("place_key")
        .set_index("place_key")[["latitude", "longitude"]]
        .assign(name=lambda frame: frame.index.to_numpy())
    )
    in_pool = tweets["user_id"].map(user_goes_to_pool).astype(bool)
    return tweets[in_pool], tweets[~in_pool], places


def build(raw_dir, with_user_metadata=False):
    """Task `midwest-2017` (or `midwest-2017-meta` with `with_user_metadata=True`) as DatasetDict(pool, query, places)."""
    pool, query, places = build_frames(raw_dir, with_user_metadata)
    return make_geolocation_task(pool, query, places)


def dataset_card(with_user_metadata=False):
    """Dataset card fields for `common.write_dataset`."""
    variant = (
        ' The text carries the user\'s profile metadata: text + " | user location: <user_location>" + '
        '" | time zone: <user_time_zone>", each part only when the field is non-empty.'
        if with_user_metadata
        else ""
    )
    return {
        "pretty_name": "Midwest tweets 2017" + (" with user metadata" if with_user_metadata else "")
        + " (ContrastGeo few-shot geolocation task)",
        "license": "other",
        "task_categories": ["text-classification"],
        "language": ["en"],
        "tags": ["geolocation", "few-shot", "twitter"],
        "description": (
            "Geotagged tweets from the US South and Midwest, 26-28 June 2017, whose Twitter place is a city. "
            "Label = the place's full name (\"Omaha, NE\"); the post's and the label's coordinates are the centre of "
            "the place's bounding box. Users are split, not tweets: a user's tweets all go to `pool` when "
            "int(md5(user_id).hexdigest(), 16) % 100 < 70, else to `query`. Classes with fewer than 20 pool or 3 "
            "query posts are left out; labels are the place names sorted." + variant
        ),
        "source": (
            "GitHub repository anjalimbhatt/sicss-culturalvariation (SICSS 2017), commit 37839c1, raw Twitter API "
            "JSON (Arkansas/ and iowa_tweets/), merged and deduplicated by tweet id."
        ),
        "license_notes": "Tweets are Twitter content under Twitter's terms; the source repository is MIT.",
        "citation": (
            "@misc{sicss2017culturalvariation,\n"
            "  title = {sicss-culturalvariation: geotagged tweets from the US South and Midwest},\n"
            "  howpublished = {\\url{https://github.com/anjalimbhatt/sicss-culturalvariation}},\n"
            "  year = {2017}\n"
            "}"
        ),
    }
