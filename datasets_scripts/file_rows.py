"""Reading a file of rows with line numbers: the one reader behind every user-data loader.

Formats, by file extension: `.csv`, `.tsv`, `.jsonl` / `.ndjson` (each optionally `.gz`), `.parquet`.
Files are read row by row (CSV/TSV with Python's `csv` module and double-quote quoting, as pandas writes them;
Parquet in record batches); blank lines are not rows.

Line numbers are 1-based as an editor shows them: in CSV/TSV the header is line 1, so the first data row is
line 2 (a quoted field spanning lines is reported at the line its record starts on); in JSONL line N is the
N-th line; in Parquet, which has no lines, it is the 1-based row number.

The raw-data builders read their files through `text_lines` too, and the one-record-per-line formats through
`record_lines`, which says what a blank line means for each.
"""

import csv
import gzip
import json
import logging
import re
import shlex
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq

logger = logging.getLogger(__name__)
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_PARQUET_BATCH_ROWS = 10_000
_INTEGER_DECIMAL = re.compile(r"-?[0-9]+\.0+")
_LISTED_BLANK_LINES = 10  # line numbers a log line of skipped blank lines lists (then " ...")


def _file_format(path):
    suffixes = [suffix.lower() for suffix in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    file_format = _FORMATS.get(suffix)
    if file_format is None or (compressed and file_format == "parquet"):
        raise ValueError(f"{path}: unsupported file type; use .csv, .tsv, .jsonl, .ndjson (optionally .gz) or .parquet")
    return file_format, compressed


def text_lines(path, compressed=False):
    """Lines of a UTF-8 file (BOM dropped), decoded one by one so that a bad byte is reported at its line."""
    with (gzip.open if compressed else open)(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                where = f"{path}:{line_number}"
                raise ValueError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start} of the line)") from None
            yield line.removeprefix("\ufeff") if line_number == 1 else line


class BlankLines:
    """The blank lines of a raw file as it is read. Those after the last record are the file's trailing newlines,
    which every reader tolerates; those between records are skipped and counted in one log line (`log_skipped`) by
    the readers of formats whose other readers skip them (CSV/TSV, JSONL), or refused by `check_none_inside` where
    the format has none."""

    def __init__(self, path):
        self.path = path
        self.waiting = []  # blank lines not yet followed by a record: trailing, unless a record comes
        self.num_inside = 0
        self.first_inside = []

    def blank(self, line_number):
        self.waiting.append(line_number)

    def record(self):
        """A record follows the waiting blank lines: they are inside the file."""
        self.num_inside += len(self.waiting)
        self.first_inside += self.waiting[: _LISTED_BLANK_LINES - len(self.first_inside)]
        self.waiting = []

    def check_none_inside(self):
        """Call before `record`: raise ValueError naming the first blank line a record follows."""
        if self.waiting:
            raise ValueError(f"{self.path}, line {self.waiting[0]}: blank line between records (the file holds one "
                             "record per line; only blank lines at its end are tolerated)")

    def log_skipped(self):
        if self.num_inside:
            more = " ..." if self.num_inside > len(self.first_inside) else ""
            logger.info("%s: %d blank line(s) between records skipped (lines %s%s)", self.path, self.num_inside,
                        self.first_inside, more)


def record_lines(path, blank_lines_inside):
    """(line number, line) of each line of a one-record-per-line file that is not blank (whitespace only).

    Blank lines after the last record are tolerated. A blank line between records is skipped with
    `blank_lines_inside="skip"` (counted in a log line once the file is read) or raises ValueError naming the file
    and line with `"error"` (see `BlankLines`).
    """
    if blank_lines_inside not in ("skip", "error"):
        raise ValueError(f"blank_lines_inside must be 'skip' or 'error', got {blank_lines_inside!r}")
    blank_lines = BlankLines(path)
    with closing(text_lines(path)) as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                blank_lines.blank(line_number)
                continue
            if blank_lines_inside == "error":
                blank_lines.check_none_inside()
            blank_lines.record()
            yield line_number, line
    blank_lines.log_skipped()


def _delimited_rows(path, compressed, delimiter):
    """(header, iterator of (line, values dict | None, problem | None, raw)) for CSV/TSV."""
    lines = text_lines(path, compressed)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise ValueError(f"{path}:1: unreadable header line ({error})") from None
    repeated = sorted({name for name in header if header.count(name) > 1}) if header else []
    if not header or repeated:
        lines.close()
        problem = f"names column(s) {repeated} more than once" if repeated else "is missing (empty file)"
        raise ValueError(f"{path}:1: the header line naming the columns {problem}")

    def rows():
        last_line_read = reader.line_num
        while True:
            line = last_line_read + 1
            try:
                fields = next(reader, None)
            except csv.Error as error:
                raise ValueError(f"{path}:{line}: unreadable {delimiter!r}-separated record ({error})") from None
            if fields is None:
                return
            last_line_read = reader.line_num
            if not fields:
                continue
            if len(fields) != len(header):
                problem = f"expected {len(header)} fields, found {len(fields)}"
                if last_line_read > line:
                    # The record swallowed the lines after its first: every row on them is in this one.
                    problem += (f" in one record over lines {line}-{last_line_read} (a quote opened on line {line} "
                                "that is never closed?)")
                yield line, None, problem, fields
            else:
                values = dict(zip(header, fields))
                yield line, values, None, values

    return header, rows()


def json_object(text):
    """(the JSON object on a line, None), or (what the line held or None, the problem) when it holds no object."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"invalid JSON ({error.msg} at column {error.colno})"
    if not isinstance(record, dict):
        return record, f"expected a JSON object, got {type(record).__name__}"
    return record, None


def _jsonl_rows(path, compressed):
    """(columns: keys seen in any object line, iterator of rows) for JSONL; the file is read twice."""

    def rows():
        for line, text in enumerate(text_lines(path, compressed), start=1):
            if not text.strip():
                continue
            record, problem = json_object(text)
            if problem is None:
                yield line, record, None, record
            else:
                yield line, None, problem, text.rstrip("\r\n") if record is None else record

    columns = {}
    for _, record, _, _ in rows():
        if record is not None:
            columns.update(dict.fromkeys(record))
    return list(columns), rows()


def _parquet_rows(path):
    parquet_file = pq.ParquetFile(path)

    def rows():
        line = 0
        for batch in parquet_file.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                line += 1
                yield line, record, None, record

    return parquet_file.schema_arrow.names, rows()


def read_rows(path):
    """Open a CSV / TSV / JSONL / Parquet file: (column names, iterator of (line, values | None, problem | None, raw)).

    `values` is the row as {column: value} (None when the row cannot be parsed, `problem` then says why);
    `raw` is what the file held, for the skipped-rows report.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    file_format, compressed = _file_format(path)
    if file_format == "parquet":
        return _parquet_rows(path)
    if file_format == "jsonl":
        return _jsonl_rows(path, compressed)
    return _delimited_rows(path, compressed, "," if file_format == "csv" else "\t")


def integer_decimal_column(path, column):
    """Whether every non-empty value of a CSV/TSV file's `column` is an integer written as a decimal ("2.0", "-3.0").

    pandas writes an integer column with a missing value so (the column turns float): read through
    `integer_of_decimal`, its values are then the integers that a JSONL or Parquet file of the same frame gives.
    Always False for JSONL and Parquet, whose values carry their type: there 2.0 is a number and "2.0" a string
    written as such. The file is read once more, up to the first value that is not such a decimal.
    """
    path = Path(path)
    if _file_format(path)[0] not in ("csv", "tsv"):
        return False
    _, rows = read_rows(path)
    found = False
    try:
        for _, values, _, _ in rows:
            value = values.get(column) if values is not None else None
            if value is None or not value.strip():
                continue  # a missing value is the row's problem, reported by the reader of the row
            if not _INTEGER_DECIMAL.fullmatch(value):
                return False
            found = True
    finally:
        rows.close()
    return found


def integer_of_decimal(text):
    """The integer a decimal such as "2.0" or "-0.0" stands for, as "2" or "0": how JSONL / Parquet floats read."""
    return str(int(text.partition(".")[0]))


def _differences(found, name):
    if found.strip() == name.strip():
        return "surrounding spaces"
    return "case" if found.casefold() == name.casefold() else "case and surrounding spaces"


def check_distinct_columns(columns_by_role):
    """Refuse one column named for two roles (`{"latitude": "lat", "longitude": "lat"}`): the file's values would be
    read twice, e.g. as both coordinates. Roles given None (a column not read) are skipped."""
    roles_by_column = {}
    for role, column in columns_by_role.items():
        if column is None:
            continue
        if column in roles_by_column:
            raise ValueError(f"{roles_by_column[column]}_column and {role}_column both name the column {column!r} "
                             f"(train.py --{roles_by_column[column]}-column, --{role}-column): give each its own")
        roles_by_column[column] = role


def check_column_names(path, columns, expected):
    """Refuse a file that lacks an expected column but has one differing from it only in case or surrounding spaces.

    `expected` maps each expected column name to the role whose `<role>_column` argument (train.py
    `--<role>-column`) names it, or to None where the name is fixed. Names match exactly, as in pandas and
    datasets; but read as absent, such a column would change the run unseen (a "Label" column ignored and the
    posts labelled by GeoNames instead), and matched loosely it could collide with another column.
    """
    for name, role in expected.items():
        if name is None or name in columns:
            continue
        near = [column for column in columns if column.strip().casefold() == name.strip().casefold()]
        if not near:
            continue
        found = near[0]
        others = f" (also {', '.join(map(repr, near[1:]))})" if len(near) > 1 else ""
        how = f"rename it to {name!r}"
        if role is not None:
            how += f" or pass {role}_column={found!r} (train.py --{role}-column {shlex.quote(found)})"
        raise ValueError(f"{path}: no column {name!r}, but {found!r} differs only in {_differences(found, name)}"
                         f"{others}: {how}")
