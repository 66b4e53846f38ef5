"""Reading files of posts and writing predictions for `contrastgeo predict`: CSV / JSONL / Parquet, or stdin / stdout.

Input is read in chunks (pandas `read_csv` with `chunksize`, JSONL line by line, pyarrow `ParquetFile.iter_batches`)
and output is written chunk by chunk, so memory does not grow with the file. The layout of the output is described in
`contrastgeo/predict.py`.
"""

import contextlib
import csv
import io
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("csv", "jsonl", "parquet")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
PREDICTION_FIELDS = ("name", "latitude", "longitude", "score")
STDIO = "-"


@dataclass
class RowResult:
    """One input row on its way to the output: its input values, and its predictions or the reason it has none."""

    values: dict
    text: str | None = None
    error: str | None = None
    predictions: list | None = None


@contextlib.contextmanager
def csv_read_errors(path):
    """pandas' CSV errors as ValueErrors naming the file. Read with `index_col=False`: a first row with more fields
    than the header would otherwise turn the first column into an index and shift every column by one; pandas then
    warns that the extra fields would be lost, which is an error here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            yield
        except pd.errors.ParserWarning:
            raise ValueError(f"{path}: line 2, the first row, has more fields than the header line; quote fields "
                             "that hold commas") from None
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: the CSV file is empty (not even a header)") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text ({error}); re-encode it as UTF-8") from None
        except pd.errors.ParserError as error:
            raise ValueError(f"{path}: malformed CSV: {error}") from None


def prediction_columns(top_k: int) -> list[str]:
    """Flat prediction columns: name_1, latitude_1, longitude_1, score_1, name_2, ..."""
    return [f"{field}_{rank}" for rank in range(1, top_k + 1) for field in PREDICTION_FIELDS]


def resolve_format(path: str, explicit: str | None, role: str) -> str:
    """The file format: `explicit` if given, else from the extension; stdin/stdout default to JSONL."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ValueError(f"--{role}-format {explicit!r} is not one of {', '.join(FORMATS)}")
        return explicit
    if path == STDIO:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValueError(
            f"cannot tell the format of {role} file {path!r} from its extension (known: {', '.join(EXTENSIONS)}); "
            f"pass --{role}-format {{{','.join(FORMATS)}}}"
        )
    return EXTENSIONS[suffix]


def unusable_text_reason(value, text_column: str) -> str | None:
    """Why `value` cannot be geolocated (the rules of `geolocate`), or None when it is a usable post."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return f"'{text_column}' is missing (null)"
    if not isinstance(value, str):
        return f"'{text_column}' is not a string (got {type(value).__name__}: {value!r})"
    if not value.strip():
        return f"'{text_column}' is empty or whitespace only"
    return None


def _checked_row(values: dict, text_column: str) -> RowResult:
    text = values.get(text_column)
    return RowResult(values=values, text=text, error=unusable_text_reason(text, text_column))


# ---------------------------------------------------------------------------------------------------------- reading
# How many JSONL rows must lack the text field, with none having it, for a run to stop as a wrong --text-column.
TEXT_FIELD_CHECK_ROWS = 1024
def _read_csv_head(stream) -> tuple[str, int, list[str]]:
    """Read a CSV text stream up to the end of its header: (the text read, the blank lines before the header, which
    pandas skips, the header's fields)."""
    head, blank_lines = [], 0
    line = stream.readline()
    while line and not line.strip(" \t\r\n\ufeff"):
        head.append(line)
        blank_lines += 1
        line = stream.readline()

    def header_lines(line):  # a quoted header field may hold line breaks: csv asks for lines until the record ends
        while line:
            head.append(line)
            yield line
            line = stream.readline()

    header = next(csv.reader(header_lines(line)), [])
    return "".join(head), blank_lines, header


class _PutBack(io.TextIOBase):
    """A text stream with the text already read from it put back in front."""

    def __init__(self, text: str, stream):
        super().__init__()
        self._text, self._stream = text, stream

    def readable(self):
        return True

    def read(self, size=-1):
        if not self._text:
            return self._stream.read(size)
        if size is None or size < 0:
            text, self._text = self._text + self._stream.read(), ""
        else:
            text, self._text = self._text[:size], self._text[size:]
        return text


class InputSource:
    """A file of posts read chunk by chunk: `columns` (None for JSONL), `arrow_schema` (Parquet), `total_rows`
    (Parquet) and `chunks()`, a generator of lists of `RowResult`."""

    def __init__(self, path: str, input_format: str, text_column: str, chunk_size: int):
        if path == STDIO and input_format == "parquet":
            raise ValueError("Parquet cannot be read from stdin: give a file, or pipe CSV/JSONL with --input-format")
        if path != STDIO and not Path(path).is_file():
            raise ValueError(f"input file {path} does not exist")
        self.path, self.format, self.text_column, self.chunk_size = path, input_format, text_column, chunk_size
        self.columns = self.arrow_schema = self.total_rows = None
        if input_format == "parquet":
            try:
                parquet_file = pq.ParquetFile(path)
            except (pa.ArrowException, OSError) as error:
                raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
            self.arrow_schema = parquet_file.schema_arrow
            self.columns = list(self.arrow_schema.names)
            self.total_rows = parquet_file.metadata.num_rows
        elif input_format == "csv" and path != STDIO:
            with self._csv_errors():
                self.columns = list(pd.read_csv(path, nrows=0, dtype=str, encoding="utf-8").columns)
        if self.columns is not None and text_column not in self.columns:
            raise ValueError(
                f"{path}: no column {text_column!r} (columns: {self.columns}); choose it with --text-column"
            )

    def chunks(self):
        if self.format == "parquet":
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_size):
                yield [_checked_row(values, self.text_column) for values in batch.to_pylist()]
        elif self.format == "csv":
            yield from self._csv_chunks()
        else:
            yield from self._jsonl_chunks()

    @contextlib.contextmanager
    def _csv_errors(self):
        """pandas' errors, with the file named (a malformed row stops the run: its fields cannot be told apart)."""
        with csv_read_errors(self.path):
            yield

    def _csv_chunks(self):
        with self._csv_errors(), self._csv_reader() as reader:
            for frame in reader:
                if self.columns is None:
                    self.columns = list(frame.columns)
                    if self.text_column not in self.columns:
                        raise ValueError(
                            f"stdin: no column {self.text_column!r} (columns: {self.columns}); use --text-column"
                        )
                yield [_checked_row(values, self.text_column) for values in frame.to_dict(orient="records")]

    def _csv_reader(self):
        """pandas' chunked reader. In a one-column CSV a blank line is a record of one empty field (RFC 4180): a post
        with empty text that keeps its place, where pandas would skip it and shift every later row. With more
        columns it is no record, and pandas skips it."""
        if self.path == STDIO:
            head, blank_lines, header = _read_csv_head(sys.stdin)
            source = _PutBack(head, sys.stdin)  # stdin cannot be read twice
        else:
            with open(self.path, encoding="utf-8", newline="") as stream:
                _, blank_lines, header = _read_csv_head(stream)
            source = self.path
        # Without pandas' skipping, blank lines before the header would be read as the header.
        one_column = {"skip_blank_lines": False, "skiprows": blank_lines} if len(header) == 1 else {}
        # Everything as text, with no NA guessing: carried columns come out as they went in.
        return pd.read_csv(source, chunksize=self.chunk_size, dtype=str, keep_default_na=False, encoding="utf-8",
                           index_col=False, **one_column)

    def _jsonl_chunks(self):
        # The first rows are held back until the text-field check has seen TEXT_FIELD_CHECK_ROWS of them (or the
        # file ended), so that whether a run stops does not depend on --chunk-size.
        self._seen_text_field, self._first_fieldless_row = False, None
        held, rows = [], 0
        for chunk in self._jsonl_line_chunks():
            if held is None:
                yield chunk
                continue
            held.append(chunk)
            rows += len(chunk)
            if rows >= TEXT_FIELD_CHECK_ROWS:
                self._check_text_field(rows)
                yield from held
                held = None
        if held is not None:
            self._check_text_field(rows)
            yield from held

    def _check_text_field(self, rows: int):
        """Fail fast on a wrong --text-column, before the whole file is read, when none of the first rows has the
        field but some are JSON objects. One row without it among rows with it is a bad row, with its error, wherever
        it stands; first rows with no JSON objects at all are left to the end-of-run check, which also names
        --input-format."""
        if self._seen_text_field or self._first_fieldless_row is None:
            return
        line_number, fields = self._first_fieldless_row
        raise ValueError(
            f"{self.path}: none of the first {rows} rows has a field {self.text_column!r} (line {line_number} has "
            f"fields {fields}); choose the text field with --text-column"
        )

    def _jsonl_line_chunks(self):
        stream = sys.stdin.buffer if self.path == STDIO else open(self.path, "rb")
        chunk = []
        try:
            for line_number, raw_line in enumerate(stream, start=1):
                if not raw_line.strip():
                    continue
                chunk.append(self._parse_jsonl_line(raw_line, line_number))
                if len(chunk) == self.chunk_size:
                    yield chunk
                    chunk = []
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        if chunk:
            yield chunk

    def _parse_jsonl_line(self, raw_line: bytes, line_number: int) -> RowResult:
        try:
            text = raw_line.decode("utf-8")
            values = json.loads(text.removeprefix("\ufeff") if line_number == 1 else text)  # a BOM is no data
        except UnicodeDecodeError:
            return RowResult(values={}, error=f"line {line_number} is not UTF-8 text")
        except json.JSONDecodeError as error:
            problem = f"line {line_number} is not valid JSON ({error.msg}, column {error.colno})"
            return RowResult(values={}, error=problem)
        if not isinstance(values, dict):
            return RowResult(values={}, error=f"line {line_number} is a JSON {type(values).__name__}, not an object")
        if self.text_column not in values:
            if self._first_fieldless_row is None:
                self._first_fieldless_row = (line_number, list(values))
            return RowResult(values=values, error=f"line {line_number} has no field {self.text_column!r}")
        self._seen_text_field = True
        return _checked_row(values, self.text_column)


# ---------------------------------------------------------------------------------------------------------- writing
class PredictionWriter:
    """Writes `RowResult` chunks in the output format; columns are fixed by the first chunk (see module docstring)."""

    def __init__(self, path: str, output_format: str, top_k: int, input_columns, input_schema):
        if path == STDIO and output_format == "parquet":
            raise ValueError("Parquet cannot be written to stdout: give an --output file, or use CSV/JSONL")
        self.path, self.format, self.top_k = path, output_format, top_k
        self.input_columns, self.input_schema = input_columns, input_schema
        self.prediction_columns = prediction_columns(top_k)
        self.columns = None
        self.rows_written = self.errors_written = 0
        # Written beside the target and renamed at the end: a failed run leaves no half file under the real name.
        self.partial_path = None
        if path != STDIO:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.partial_path = Path(path).with_name(Path(path).name + ".partial")
        self._stream = self._csv_writer = self._parquet_writer = None

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is None:
            self._finish()
            return
        self._release()
        if self.partial_path is not None:
            self.partial_path.unlink(missing_ok=True)

    def _start(self, first_chunk):
        carried = self.input_columns
        if carried is None:  # JSONL input: the fields of the first chunk, in order of appearance
            carried = list(dict.fromkeys(key for row in first_chunk for key in row.values))
        self.reserved = set(self.prediction_columns) | {"error", "predictions"}
        clashes = [column for column in carried if column in self.reserved]
        if clashes:
            raise ValueError(f"input columns {clashes} clash with output columns; rename them in the input")
        extra = ["predictions"] if self.format == "jsonl" else []
        self.carried, self.carried_set = carried, set(carried)
        self.columns = carried + self.prediction_columns + extra + ["error"]
        if self.format == "parquet":
            self._parquet_writer = pq.ParquetWriter(self.partial_path, self._arrow_schema(first_chunk))
        else:
            self._stream = (
                sys.stdout if self.partial_path is None
                else open(self.partial_path, "w", encoding="utf-8", newline="")
            )
            if self.format == "csv":
                self._csv_writer = csv.writer(self._stream, lineterminator="\n")
                self._csv_writer.writerow(self.columns)

    def _arrow_schema(self, first_chunk) -> pa.Schema:
        fields = []
        for column in self.carried:
            if self.input_schema is not None:
                fields.append(self.input_schema.field(column))
                continue
            try:
                column_type = pa.array([row.values.get(column) for row in first_chunk]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise ValueError(f"column {column!r} mixes value types ({error}); write JSONL output instead") from None
            fields.append(pa.field(column, pa.string() if pa.types.is_null(column_type) else column_type))
        for column in self.prediction_columns:
            fields.append(pa.field(column, pa.string() if column.startswith("name_") else pa.float64()))
        fields.append(pa.field("error", pa.string()))
        return pa.schema(fields)

    def _output_row(self, row: RowResult, row_index: int) -> dict:
        if self.format == "jsonl":  # each line is its own object: carry exactly the row's fields
            clashes = [key for key in row.values if key in self.reserved]
            if clashes:
                raise ValueError(f"input row {row_index}: fields {clashes} clash with output fields; rename them")
            output = dict(row.values)
        else:
            unknown = [key for key in row.values if key not in self.carried_set]
            if unknown:
                raise ValueError(
                    f"input row {row_index} has fields {unknown} that the first rows do not have (columns: "
                    f"{self.carried}); {self.format} output needs the same fields in every row: write JSONL instead"
                )
            output = {column: row.values.get(column) for column in self.carried}
        predictions = row.predictions or []
        for rank in range(1, self.top_k + 1):
            record = predictions[rank - 1] if rank <= len(predictions) else {}
            for field in PREDICTION_FIELDS:
                output[f"{field}_{rank}"] = record.get(field)
        if self.format == "jsonl":
            output["predictions"] = row.predictions
        output["error"] = row.error
        return output

    def write(self, chunk):
        if self.columns is None:
            self._start(chunk)
        rows = [self._output_row(row, self.rows_written + offset) for offset, row in enumerate(chunk)]
        if self.format == "parquet":
            try:
                table = pa.Table.from_pylist(rows, schema=self._parquet_writer.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise ValueError(
                    f"input rows {self.rows_written}..{self.rows_written + len(rows) - 1} do not fit the column types "
                    f"of the first rows ({error}); write JSONL output instead"
                ) from None
            self._parquet_writer.write_table(table)
        elif self.format == "csv":
            self._csv_writer.writerows([[row[column] for column in self.columns] for row in rows])
        else:
            self._stream.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        self.rows_written += len(rows)
        self.errors_written += sum(row.error is not None for row in chunk)

    def _release(self):
        if self._parquet_writer is not None:
            self._parquet_writer.close()
        elif self._stream is sys.stdout:
            sys.stdout.flush()
        elif self._stream is not None:
            self._stream.close()

    def _finish(self):
        if self.columns is None:  # no input rows: still write the header / schema
            self._start([])
        self._release()
        if self.partial_path is not None:
            os.replace(self.partial_path, self.path)
