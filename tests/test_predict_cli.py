"""`contrastgeo predict`: every input row kept in order (bad rows with an error), CSV/JSONL/Parquet in and out,
stdin/stdout, --places, --top-k, chunked streaming, and 2 processes under `accelerate launch` = 1 process."""

import csv
import io
import json
import os
import socket
import subprocess
import sys
from itertools import product
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from contrastgeo.cli import main
from contrastgeo.prediction_io import FORMATS
from modeling_contrastgeo import ContrastGeoModel
from tests.tiny_models import ALPINE_PLACES as PLACES, MIDWEST_PLACES as OTHER_PLACES, make_tiny_encoder

REPO_ROOT = Path(__file__).resolve().parents[1]
GOOD_POSTS = ["Grüezi mitenand, hüt gits Fondue", "Going to the Husker game tonight!", "Servus aus Wien"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_path):
    encoder = make_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"), minilm_path)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_contrastgeo")
    ContrastGeoModel.from_text_encoder(encoder, places=PLACES).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(saved_model):
    return ContrastGeoModel.from_pretrained(saved_model).eval()


def predict(saved_model, *arguments) -> int:
    return main(["predict", "--model", str(saved_model), *map(str, arguments)])


def write_rows(path: Path, rows: list[dict], file_format: str):
    if file_format == "csv":
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif file_format == "jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


def read_rows(path: Path, file_format: str) -> list[dict]:
    if file_format == "csv":
        with open(path, newline="", encoding="utf-8") as stream:
            return list(csv.DictReader(stream))
    if file_format == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def predicted(row: dict, top_k: int) -> list[dict]:
    """The flat prediction columns of an output row as records (CSV cells parsed back to numbers)."""
    records = []
    for rank in range(1, top_k + 1):
        if row[f"name_{rank}"] in (None, ""):
            break
        records.append({"name": row[f"name_{rank}"], **{
            field: float(row[f"{field}_{rank}"]) for field in ("latitude", "longitude", "score")}})
    return records


def test_a_bad_row_keeps_its_place_with_an_error(saved_model, model, tmp_path, capsys):
    write_rows(tmp_path / "posts.csv", [{"id": "007", "text": "   ", "note": "NA"},
                                        {"id": "008", "text": GOOD_POSTS[0], "note": ""}], "csv")
    assert predict(saved_model, "--input", tmp_path / "posts.csv", "--output", tmp_path / "out.csv", "--top-k", 3) == 0
    rows = read_rows(tmp_path / "out.csv", "csv")
    assert [row["id"] for row in rows] == ["007", "008"]
    assert rows[0]["note"] == "NA" and rows[0]["text"] == "   "  # carried through as written
    assert rows[0]["error"] == "'text' is empty or whitespace only"
    assert all(rows[0][f"{field}_{rank}"] == "" for field in ("name", "score") for rank in (1, 2, 3))
    assert rows[1]["error"] == ""
    assert predicted(rows[1], 3) == model.geolocate(GOOD_POSTS[:1], top_k=3)[0]
    assert list(rows[0]) == ["id", "text", "note"] + [
        f"{field}_{rank}" for rank in (1, 2, 3) for field in ("name", "latitude", "longitude", "score")] + ["error"]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "geolocating" in captured.err and "2 rows (1 with an error)" in captured.err


@pytest.mark.parametrize("input_format,output_format", list(product(FORMATS, FORMATS)))
def test_every_format_pair(saved_model, model, tmp_path, input_format, output_format):
    rows = [{"id": 1, "text": GOOD_POSTS[0]}, {"id": 2, "text": None},
            {"id": 3, "text": GOOD_POSTS[1]}, {"id": 4, "text": ""}]
    if input_format == "csv":  # CSV has no null: an empty cell
        rows[1]["text"] = ""
    source, target = tmp_path / f"posts.{input_format}", tmp_path / f"predictions.{output_format}"
    write_rows(source, rows, input_format)
    assert predict(saved_model, "--input", source, "--output", target, "--top-k", 2, "--quiet") == 0
    output = read_rows(target, output_format)
    expected = model.geolocate([GOOD_POSTS[0], GOOD_POSTS[1]], top_k=2)
    assert [str(row["id"]) for row in output] == ["1", "2", "3", "4"]
    assert predicted(output[0], 2) == expected[0] and predicted(output[2], 2) == expected[1]
    assert not output[0]["error"] and not output[2]["error"]
    assert "'text' is" in output[1]["error"] and output[3]["error"] == "'text' is empty or whitespace only"
    assert predicted(output[1], 2) == [] and predicted(output[3], 2) == []
    if output_format == "jsonl":
        assert output[0]["predictions"] == expected[0] and output[1]["predictions"] is None


def test_jsonl_rows_that_are_not_posts(saved_model, model, tmp_path):
    lines = [json.dumps({"text": GOOD_POSTS[0], "meta": {"lang": "gsw"}}), "", json.dumps({"text": 5}),
             "{not json", json.dumps([1, 2]), json.dumps({"id": 9}), json.dumps({"text": GOOD_POSTS[2]})]
    (tmp_path / "posts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "out.jsonl",
                   "--top-k", 1, "--quiet") == 0
    output = read_rows(tmp_path / "out.jsonl", "jsonl")
    assert [row["error"] for row in output] == [
        None,
        "'text' is not a string (got int: 5)",
        "line 4 is not valid JSON (Expecting property name enclosed in double quotes, column 2)",
        "line 5 is a JSON list, not an object",
        "line 6 has no field 'text'",
        None,
    ]  # the blank line 2 is not a row
    assert output[0]["meta"] == {"lang": "gsw"} and output[4]["id"] == 9
    expected = model.geolocate([GOOD_POSTS[0], GOOD_POSTS[2]], top_k=1)
    assert [output[0]["predictions"], output[5]["predictions"]] == expected


def test_stdin_and_stdout(saved_model, model, monkeypatch, capsys):
    posts = "".join(json.dumps({"text": post}) + "\n" for post in GOOD_POSTS)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(posts.encode()), encoding="utf-8"))
    assert predict(saved_model, "--input", "-", "--output", "-", "--output-format", "csv", "--top-k", 2) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    expected = model.geolocate(GOOD_POSTS, top_k=2)
    assert [predicted(row, 2) for row in rows] == expected
    assert "geolocating" in captured.err and "geolocating" not in captured.out

    table = "text\n" + "\n".join(f'"{post}"' for post in GOOD_POSTS) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(table.encode()), encoding="utf-8"))
    assert predict(saved_model, "--input", "-", "--input-format", "csv", "--output", "-", "--top-k", 2,
                   "--quiet") == 0
    assert [row["predictions"] for row in map(json.loads, capsys.readouterr().out.splitlines())] == expected


def test_places_geonames_country_and_places_file(saved_model, model, tmp_path):
    write_rows(tmp_path / "posts.jsonl", [{"text": post} for post in GOOD_POSTS], "jsonl")
    assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "ch.jsonl",
                   "--places", "geonames:CH", "--top-k", 3, "--quiet") == 0
    output = read_rows(tmp_path / "ch.jsonl", "jsonl")
    assert [row["predictions"] for row in output] == model.geolocate(GOOD_POSTS, places="geonames:CH", top_k=3)
    assert all(record["name"].endswith("Switzerland") for row in output for record in row["predictions"])

    places_file = tmp_path / "places.csv"
    write_rows(places_file, [{"label": place["name"], "latitude": place["latitude"],
                              "longitude": place["longitude"]} for place in OTHER_PLACES], "csv")
    assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "us.jsonl",
                   "--places", places_file, "--top-k", 2, "--quiet") == 0
    output = read_rows(tmp_path / "us.jsonl", "jsonl")
    assert [row["predictions"] for row in output] == model.geolocate(GOOD_POSTS, places=OTHER_PLACES, top_k=2)


def test_place_prior_flag_uses_the_places_file_populations(saved_model, model, tmp_path):
    write_rows(tmp_path / "posts.jsonl", [{"text": post} for post in GOOD_POSTS], "jsonl")
    first_without_prior = {row[0]["name"] for row in model.geolocate(GOOD_POSTS, places=PLACES)}
    heavy = next(index for index, place in enumerate(PLACES) if place["name"] not in first_without_prior)
    populations = [1000] * len(PLACES)
    populations[heavy] = 10 ** 12
    populations[heavy - 1] = ""  # a blank cell: GeoNames' population of the nearest city
    places_file = tmp_path / "places.csv"
    write_rows(places_file, [{"label": place["name"], "latitude": place["latitude"], "longitude": place["longitude"],
                              "population": population} for place, population in zip(PLACES, populations)], "csv")
    gallery = [dict(place, **({"population": population} if population != "" else {}))
               for place, population in zip(PLACES, populations)]
    for flag in ("population", "none"):
        output_file = tmp_path / f"{flag}.jsonl"
        assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", output_file,
                       "--places", places_file, "--place-prior", flag, "--top-k", 2, "--quiet") == 0
        expected = model.geolocate(GOOD_POSTS, places=gallery, top_k=2, place_prior=flag)
        output = [row["predictions"] for row in read_rows(output_file, "jsonl")]
        assert output == expected
    # With the prior, the place of 10^12 people wins every post; the saved model has no prior of its own.
    with_prior = read_rows(tmp_path / "population.jsonl", "jsonl")
    assert {row["predictions"][0]["name"] for row in with_prior} == {PLACES[heavy]["name"]}


def test_top_k_columns(saved_model, model, tmp_path):
    write_rows(tmp_path / "posts.csv", [{"text": post} for post in GOOD_POSTS], "csv")
    assert predict(saved_model, "--input", tmp_path / "posts.csv", "--output", tmp_path / "one.parquet",
                   "--top-k", 1, "--quiet") == 0
    table = pq.read_table(tmp_path / "one.parquet")
    assert table.column_names == ["text", "name_1", "latitude_1", "longitude_1", "score_1", "error"]
    assert [predicted(row, 1) for row in table.to_pylist()] == model.geolocate(GOOD_POSTS, top_k=1)

    # More ranks than the 5 places of the label set: the extra columns exist and are null.
    assert predict(saved_model, "--input", tmp_path / "posts.csv", "--output", tmp_path / "seven.parquet",
                   "--top-k", 7, "--quiet") == 0
    rows = pq.read_table(tmp_path / "seven.parquet").to_pylist()
    assert [predicted(row, 7) for row in rows] == model.geolocate(GOOD_POSTS, top_k=7)
    assert all(row["name_6"] is None and row["score_7"] is None for row in rows)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_weights(saved_model, model, tmp_path, dtype):
    write_rows(tmp_path / "posts.jsonl", [{"text": post} for post in GOOD_POSTS], "jsonl")
    assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "out.jsonl",
                   "--dtype", dtype, "--top-k", 3, "--quiet") == 0
    rows = read_rows(tmp_path / "out.jsonl", "jsonl")
    half = ContrastGeoModel.from_pretrained(saved_model, dtype=getattr(torch, dtype)).eval()
    assert next(half.parameters()).dtype == getattr(torch, dtype)
    assert [predicted(row, 3) for row in rows] == half.geolocate(GOOD_POSTS, top_k=3)
    # The half-precision weights give float32 probabilities close to the float32 model's.
    full = {(post, place["name"]): place["score"]
            for post, ranked in zip(GOOD_POSTS, model.geolocate(GOOD_POSTS, top_k=5)) for place in ranked}
    for post, row in zip(GOOD_POSTS, rows):
        assert all(abs(place["score"] - full[post, place["name"]]) < 0.02 for place in predicted(row, 3))


def test_small_chunks_stream_in_order(saved_model, model, tmp_path):
    posts = [f"{GOOD_POSTS[index % 3]} #{index}" for index in range(7)]
    posts[4] = ""
    write_rows(tmp_path / "posts.jsonl", [{"row": index, "text": post} for index, post in enumerate(posts)], "jsonl")
    # One post per forward pass: the predictions then cannot depend on how rows fall into chunks.
    assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "out.parquet",
                   "--chunk-size", 2, "--batch-size", 1, "--top-k", 2, "--quiet") == 0
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups == 4
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["row"] for row in rows] == list(range(7))
    good = [post for post in posts if post]
    assert [predicted(row, 2) for row in rows if not row["error"]] == model.geolocate(good, top_k=2, batch_size=1)
    assert not (tmp_path / "out.parquet.partial").exists()


def test_usage_errors_name_the_problem(saved_model, tmp_path, capsys):
    posts, clashing, output = tmp_path / "posts.csv", tmp_path / "clash.csv", tmp_path / "out.csv"
    write_rows(posts, [{"text": GOOD_POSTS[0]}], "csv")
    write_rows(clashing, [{"text": GOOD_POSTS[0], "score_1": "x"}], "csv")
    write_rows(tmp_path / "new_field.jsonl", [{"text": GOOD_POSTS[0]}, {"text": GOOD_POSTS[1], "extra": 1}], "jsonl")
    write_rows(tmp_path / "bad_places.csv", [{"name": "A", "latitude": 1.0, "longitude": 2.0},
                                             {"name": "B", "latitude": 95.0, "longitude": 2.0}], "csv")
    cases = [
        (["--input", posts, "--output", output, "--text-column", "body"], "no column 'body'"),
        (["--input", posts, "--output", output, "--places", tmp_path / "nowhere.csv"],
         "is neither 'geonames', 'geonames:CC' nor an existing places file"),
        (["--input", posts, "--output", tmp_path / "out.txt"], "pass --output-format"),
        (["--input", clashing, "--output", output], "input columns ['score_1'] clash with output columns"),
        (["--input", tmp_path / "missing.csv", "--output", output], "does not exist"),
        (["--input", posts, "--output", "-", "--output-format", "parquet"], "Parquet cannot be written to stdout"),
        (["--input", posts, "--output", output, "--places", tmp_path / "bad_places.csv"],
         "bad_places.csv: place 1 (B): latitude 95.0 is outside [-90, 90]"),
        (["--input", tmp_path / "new_field.jsonl", "--output", output, "--chunk-size", 1],
         "input row 1 has fields ['extra'] that the first rows do not have"),
        (["--input", posts, "--output", tmp_path], f"--output {tmp_path} is a folder"),
        (["--input", tmp_path, "--output", output], f"--input {tmp_path} is a folder"),
        (["--input", posts, "--output", output, "--device", "bogus"], "--device 'bogus' is not a device torch knows"),
        (["--input", tmp_path / "shifted.csv", "--output", output],
         "shifted.csv: line 2, the first row, has more fields than the header line"),
        (["--input", posts, "--output", output, "--places", tmp_path / "shifted_places.csv"],
         "shifted_places.csv: line 2, the first row, has more fields than the header line"),
        (["--input", tmp_path / "fake.parquet", "--output", output], "fake.parquet: not a readable Parquet file"),
        (["--input", posts, "--output", output, "--places", tmp_path / "fake.parquet"],
         "fake.parquet: not a readable places file"),
        (["--input", posts, "--output", output, "--places", tmp_path / "bad_population.csv"],
         "bad_population.csv: place 1 (B): population must be a number, got 'many'"),
    ]
    # pandas would read the extra first-row field as an index column and shift every column onto the next one's name
    (tmp_path / "shifted.csv").write_text("text,user\nGrüezi,anna,EXTRA\nServus,bert\n", encoding="utf-8")
    (tmp_path / "shifted_places.csv").write_text("name,latitude,longitude\nA,10,10,5\nB,20,20\n", encoding="utf-8")
    (tmp_path / "fake.parquet").write_text("hello", encoding="utf-8")
    (tmp_path / "bad_population.csv").write_text("name,latitude,longitude,population\nA,10,10,5\nB,20,20,many\n",
                                                 encoding="utf-8")
    if not torch.cuda.is_available():
        cases.append((["--input", posts, "--output", output, "--device", "cuda"], "torch sees no CUDA device here"))
    for arguments, message in cases:
        assert predict(saved_model, *arguments, "--quiet") == 1, arguments
        assert message in capsys.readouterr().err, arguments
        assert not output.exists() and not Path(f"{output}.partial").exists(), arguments
    for model_argument, message in [(tmp_path / "nowhere", "no such model folder"),
                                    (tmp_path, "not a saved model folder (no config.json")]:
        assert main(["predict", "--model", str(model_argument), "--input", str(posts), "--output", str(output)]) == 1
        assert f"--model {model_argument}: {message}" in capsys.readouterr().err


def test_a_run_where_no_row_could_be_geolocated_fails(saved_model, tmp_path, capsys):
    write_rows(tmp_path / "posts.csv", [{"text": GOOD_POSTS[0]}, {"text": GOOD_POSTS[1]}], "csv")
    assert predict(saved_model, "--input", tmp_path / "posts.csv", "--input-format", "jsonl",
                   "--output", tmp_path / "out.jsonl", "--quiet") == 1
    assert "no row could be geolocated" in capsys.readouterr().err
    assert len(read_rows(tmp_path / "out.jsonl", "jsonl")) == 3  # every line kept, with its error


def test_a_byte_order_mark_is_not_part_of_the_first_jsonl_row(saved_model, model, tmp_path):
    (tmp_path / "posts.jsonl").write_text("\ufeff" + json.dumps({"text": GOOD_POSTS[0]}) + "\n", encoding="utf-8")
    assert predict(saved_model, "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "out.jsonl",
                   "--top-k", 1, "--quiet") == 0
    [row] = read_rows(tmp_path / "out.jsonl", "jsonl")
    assert row["error"] is None and row["predictions"] == model.geolocate([GOOD_POSTS[0]], top_k=1)[0]


@pytest.mark.slow
def test_console_entry_pipes_stdin_to_stdout(saved_model, model):
    posts = "".join(json.dumps({"text": post}) + "\n" for post in GOOD_POSTS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "contrastgeo.cli", "predict", "--model", str(saved_model), "--input", "-",
         "--output", "-", "--top-k", "2"], input=posts, capture_output=True, text=True, env=env, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [row["predictions"] for row in output] == model.geolocate(GOOD_POSTS, top_k=2)
    assert "geolocating" in completed.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_what_one_process_writes(saved_model, tmp_path):
    pytest.importorskip("accelerate")
    rows = [{"id": f"{index:03d}", "text": f"{GOOD_POSTS[index % 3]} #{index}"} for index in range(11)]
    rows[5]["text"] = ""
    write_rows(tmp_path / "posts.csv", rows, "csv")
    common = ["--input", tmp_path / "posts.csv", "--chunk-size", 3, "--top-k", 2]
    # accelerate launch runs each process with OMP_NUM_THREADS=1; the same thread count gives the same float sums.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert predict(saved_model, *common, "--quiet", "--output", tmp_path / "one.parquet") == 0
    finally:
        torch.set_num_threads(threads)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "contrastgeo.cli", "predict",
               "--model", str(saved_model), *map(str, common), "--output", str(tmp_path / "two.parquet")]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "geolocating [process 0 of 2]" in completed.stderr  # really two processes, not two single runs
    one, two = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "two.parquet")
    assert two.column("id").to_pylist() == [row["id"] for row in rows]
    assert two.equals(one)
    assert (tmp_path / "two.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    assert not (tmp_path / "two.parquet.parts").exists()
