"""A CSV of places uploaded to the Space: read and checked, every bad line named in one message.

Kept apart from app.py, which builds the page: this is plain parsing, tested without gradio.
"""

import csv
import math
from pathlib import Path


class UserInputError(ValueError):
    """A problem with what the user typed or uploaded; shown in the UI as is."""


def _coordinate(value, what, limit, where):
    try:
        number = float(value)
    except ValueError:
        raise UserInputError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise UserInputError(f"{where}: {what} {value!r} is not a number in [-{limit:g}, {limit:g}]")
    return number


def _read_csv_rows(path, file_name):
    """[(line number, fields)] of a CSV file, header first, blank lines left out (they hold no place)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)  # a stray quote is an error, not silently merged text
            rows = []
            for fields in reader:
                if any(field.strip() for field in fields):
                    rows.append((reader.line_num, [field.strip() for field in fields]))
    except UnicodeDecodeError:
        raise UserInputError(f"{file_name} is not a UTF-8 text file; upload a CSV of places.") from None
    except csv.Error as error:
        raise UserInputError(f"{file_name} is not a well-formed CSV file: {error}") from None
    if not rows:
        raise UserInputError(f"{file_name} is empty; it needs a header name,latitude,longitude and rows.")
    return rows


def _population(value, where):
    try:
        number = float(value)
    except ValueError:
        raise UserInputError(f"{where}: population {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise UserInputError(f"{where}: population {value!r} is not a number >= 0")
    return number


def read_places_csv(path) -> list[dict]:
    """Places from a CSV file with columns name (or label), latitude, longitude and optionally population (for the
    place prior; a blank cell leaves it to GeoNames); errors name the bad lines."""
    file_name = Path(path).name
    (_, header), *rows = _read_csv_rows(path, file_name)
    columns = {column.lower(): index for index, column in enumerate(header)}
    lowered = [column.lower() for column in header]
    repeated = [column for column in ("name", "label", "latitude", "longitude", "population")
                if lowered.count(column) > 1]
    if repeated:  # the last one would be read without a word
        raise UserInputError(f"{file_name} names the column(s) {', '.join(repeated)} more than once in its header.")
    name_column = columns.get("name", columns.get("label"))
    missing = [what for what, column in (("name", name_column), ("latitude", columns.get("latitude")),
                                         ("longitude", columns.get("longitude"))) if column is None]
    if missing:
        raise UserInputError(
            f"{file_name} has no column {', '.join(missing)} (found: {', '.join(header)}); "
            "a places CSV needs the columns name, latitude, longitude."
        )
    places, problems = [], []
    for line, fields in rows:
        where = f"line {line}"
        try:
            if len(fields) != len(header):
                raise UserInputError(f"{where}: {len(fields)} fields but the header has {len(header)}")
            name = fields[name_column]
            if not name:
                raise UserInputError(f"{where}: the name is empty")
            place = {"name": name, "latitude": _coordinate(fields[columns["latitude"]], "latitude", 90.0, where),
                     "longitude": _coordinate(fields[columns["longitude"]], "longitude", 180.0, where)}
            if "population" in columns and fields[columns["population"]]:
                place["population"] = _population(fields[columns["population"]], where)
        except UserInputError as error:
            problems.append(str(error))
            continue
        places.append(place)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UserInputError(f"{file_name} has {len(problems)} bad row(s): {shown}")
    if not places:
        raise UserInputError(f"{file_name} holds no places, only a header.")
    return places
