"""Streaming batch geolocation of files of posts: CSV / JSONL / Parquet (or stdin / stdout) in, predictions out.

The engine behind `contrastgeo predict` (see `contrastgeo/cli.py`). Input is read in chunks (pandas `read_csv`
with `chunksize`, JSONL line by line, pyarrow `ParquetFile.iter_batches`) and output is written chunk by chunk, so
memory does not grow with the file.

Output layout: every input row gives one output row, in input order, with
- the input columns, carried through unchanged (CSV input is read as text: "007" stays "007", "NA" stays "NA");
- for rank r in 1..K: `name_r`, `latitude_r`, `longitude_r`, `score_r` (empty/null past the gallery's size);
- JSONL only: `predictions`, the list of `{"name", "latitude", "longitude", "score"}` records, best first;
- `error`: null for a geolocated row, else why the row was not geolocated (missing, non-string, empty or
  whitespace-only text; for JSONL also a line that is not UTF-8, not JSON or not a JSON object, named by its
  line number). Such rows keep their place, with null predictions.
Blank lines of a JSONL file are not rows; in a one-column CSV a blank line is a row with empty text (with more
columns, blank lines are skipped). A JSONL input where none of the first 1024 rows has the text field stops before any
output (a wrong --text-column). For CSV/Parquet output of a JSONL input, the columns are the fields of
the first chunk's rows (in order of appearance); a later row with another field is an error: write JSONL instead.

A failed run leaves no output file (the `<output>.partial` being written is removed).

Several processes (`accelerate launch`): chunk i is geolocated by process i mod N, each process writes its part
file next to the output, and the main process merges the parts in input order after `wait_for_everyone`, so the
output is the same as with one process.
"""

import json
import sys
from pathlib import Path

from tqdm import tqdm

from .prediction_io import STDIO, InputSource, PredictionWriter, resolve_format

DEFAULT_CHUNK_SIZE = 1024


class SingleProcess:
    """The process layout of a plain run (accelerate's `PartialState` has the same attributes)."""

    process_index = 0
    num_processes = 1
    is_main_process = True

    def wait_for_everyone(self):
        pass


# ---------------------------------------------------------------------------------------------------------- engine
def geolocate_chunk(model, chunk, places, top_k: int, batch_size: int, rerank=None, place_prior=None):
    """Fill in the predictions of the usable rows of `chunk` (one `geolocate` call); rows with an error stay empty."""
    usable = [row for row in chunk if row.error is None]
    if usable:
        predictions = model.geolocate(
            [row.text for row in usable], places=places, top_k=top_k, batch_size=batch_size, rerank=rerank,
            place_prior=place_prior,
        )
        for row, row_predictions in zip(usable, predictions):
            row.predictions = row_predictions
    return chunk


def predict_file(model, input_path: str, output_path: str, *, text_column: str = "text", top_k: int = 5,
                 places=None, input_format: str | None = None, output_format: str | None = None,
                 batch_size: int = 64, chunk_size: int = DEFAULT_CHUNK_SIZE, rerank: bool | None = None,
                 place_prior=None, show_progress: bool = True, state=None) -> dict | None:
    """Geolocate every post of a file and write the predictions (layout: see the module docstring).

    Args:
        model: a `ContrastGeoModel` (already on its device).
        input_path, output_path: file paths, or "-" for stdin / stdout (CSV or JSONL only).
        places: None (the model's label set), "geonames", "geonames:CC" or a list/table of places.
        rerank, place_prior: as in `ContrastGeoModel.geolocate` (None: as the model's config says).
        state: the process layout under `accelerate launch` (`accelerate.PartialState()`); None for one process.

    Returns:
        `{"rows": rows written, "errors": rows with an error}` on the main process, None on the others.
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"chunk_size and batch_size must be positive, got {chunk_size} and {batch_size}")
    state = state or SingleProcess()
    input_format = resolve_format(input_path, input_format, "input")
    output_format = resolve_format(output_path, output_format, "output")
    if state.num_processes > 1 and STDIO in (input_path, output_path):
        raise ValueError("with several processes, --input and --output must be files that every process can reach")
    source = InputSource(input_path, input_format, text_column, chunk_size)
    gallery = model.resolve_places(places)  # resolved and validated once, not per chunk
    distributed = state.num_processes > 1
    progress = tqdm(
        total=None if distributed else source.total_rows, unit=" posts", file=sys.stderr, dynamic_ncols=True,
        desc="geolocating" + (f" [process {state.process_index} of {state.num_processes}]" if distributed else ""),
        disable=not (show_progress and state.is_main_process),
    )

    def geolocated(chunk):
        geolocate_chunk(model, chunk, gallery, top_k, batch_size, rerank, place_prior)
        progress.update(len(chunk))
        return chunk

    def new_writer():
        return PredictionWriter(output_path, output_format, top_k, source.columns, source.arrow_schema)

    with progress:
        if not distributed:
            with new_writer() as writer:
                for chunk in source.chunks():
                    writer.write(geolocated(chunk))
            return {"rows": writer.rows_written, "errors": writer.errors_written}
        parts_dir = Path(output_path).with_name(Path(output_path).name + ".parts")
        parts_dir.mkdir(parents=True, exist_ok=True)
        with open(_part_path(parts_dir, state.process_index), "w", encoding="utf-8") as part:
            for chunk_index, chunk in enumerate(source.chunks()):
                if chunk_index % state.num_processes == state.process_index:
                    part.write(json.dumps([row.predictions for row in geolocated(chunk)]) + "\n")
    state.wait_for_everyone()
    counts = None
    if state.is_main_process:
        with new_writer() as writer:
            _merge_parts(parts_dir, state.num_processes, source, writer)
        counts = {"rows": writer.rows_written, "errors": writer.errors_written}
    state.wait_for_everyone()
    return counts


def _part_path(parts_dir: Path, process_index: int) -> Path:
    return parts_dir / f"part-{process_index:05d}.jsonl"


def _merge_parts(parts_dir: Path, num_processes: int, source: InputSource, writer: PredictionWriter):
    """Write the input again, chunk by chunk, with the predictions the processes wrote (chunk i came from process
    i mod N, one JSON line per chunk). The part files hold predictions only: the input values come from the input
    itself, so every column goes through as it was read (Parquet types included)."""
    part_paths = [_part_path(parts_dir, index) for index in range(num_processes)]
    parts = [open(path, encoding="utf-8") for path in part_paths]
    try:
        for chunk_index, chunk in enumerate(source.chunks()):
            line = parts[chunk_index % num_processes].readline()
            predictions = json.loads(line) if line else None
            if predictions is None or len(predictions) != len(chunk):
                raise RuntimeError(f"the part files in {parts_dir} do not match the input at chunk {chunk_index}: "
                                   "a process stopped early")
            for row, row_predictions in zip(chunk, predictions):
                row.predictions = row_predictions
            writer.write(chunk)
        if any(part.read(1) for part in parts):
            raise RuntimeError(f"the part files in {parts_dir} hold more chunks than the input: it changed while "
                               "being geolocated")
    finally:
        for part in parts:
            part.close()
    for path in part_paths:
        path.unlink()
    if not any(parts_dir.iterdir()):
        parts_dir.rmdir()
