"""`contrastgeo predict` keeps every input row, in order, at the edges of the formats: a JSONL first line without the
text field, blank lines of a one-column CSV; from a file, from stdin and across chunk boundaries alike."""

import io
import json
import sys

from tests.test_predict_cli import GOOD_POSTS, model, predict, read_rows, saved_model  # noqa: F401 (fixtures)

FIRST_LINE_WITHOUT_TEXT = [{"id": 1, "content": None}, {"id": 2, "text": "grüezi chuchi"},
                           {"id": 3, "text": "merci vielmal"}]
# The blank fifth line is a post with empty text (RFC 4180: one empty field); the final newline ends the file.
ONE_COLUMN_CSV = 'text\ngrüezi chuchi\n""\nmerci\n\nfasnacht\n'


def run_all_ways(saved_model, tmp_path, monkeypatch, capsys, content: str, input_format: str) -> list[str]:
    """The JSONL output for `content` as a file, with --chunk-size 2 and 1 (boundaries inside the input) and from
    stdin; asserts the four are identical and returns it. One post per forward pass: predictions cannot depend on
    how rows fall into chunks."""
    source = tmp_path / f"posts.{input_format}"
    source.write_text(content, encoding="utf-8")
    common = ["--output", "-", "--input-format", input_format, "--batch-size", 1, "--top-k", 2, "--quiet"]
    outputs = []
    for arguments in (["--input", source], ["--input", source, "--chunk-size", 2],
                      ["--input", source, "--chunk-size", 1], ["--input", "-"]):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(content.encode()), encoding="utf-8"))
        assert predict(saved_model, *arguments, *common) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr().out)
    assert all(output == outputs[0] for output in outputs)
    return [json.loads(line) for line in outputs[0].splitlines()]


def test_a_first_jsonl_line_without_the_text_field_is_a_bad_row(saved_model, model, tmp_path, monkeypatch,
                                                                 capsys):
    content = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in FIRST_LINE_WITHOUT_TEXT)
    rows = run_all_ways(saved_model, tmp_path, monkeypatch, capsys, content, "jsonl")
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert [row["error"] for row in rows] == ["line 1 has no field 'text'", None, None]
    assert rows[0]["content"] is None and rows[0]["predictions"] is None
    posts = [row["text"] for row in FIRST_LINE_WITHOUT_TEXT[1:]]
    assert [row["predictions"] for row in rows[1:]] == model.geolocate(posts, top_k=2, batch_size=1)


def test_a_wrong_text_field_stops_jsonl_before_any_output(saved_model, tmp_path, capsys):
    source, output = tmp_path / "posts.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"body": post}) + "\n" for post in GOOD_POSTS), encoding="utf-8")
    for chunk_size in (1, 2, 1024):  # the check reads the same first rows whatever the chunks
        assert predict(saved_model, "--input", source, "--output", output, "--chunk-size", chunk_size, "--quiet") == 1
        error = capsys.readouterr().err
        assert (f"{source}: none of the first {len(GOOD_POSTS)} rows has a field 'text' (line 1 has fields ['body'])"
                in error)
        assert "--text-column" in error
        assert not output.exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_a_blank_line_of_a_one_column_csv_is_a_row(saved_model, model, tmp_path, monkeypatch, capsys):
    rows = run_all_ways(saved_model, tmp_path, monkeypatch, capsys, ONE_COLUMN_CSV, "csv")
    assert [row["text"] for row in rows] == ["grüezi chuchi", "", "merci", "", "fasnacht"]
    empty = "'text' is empty or whitespace only"
    assert [row["error"] for row in rows] == [None, empty, None, empty, None]
    posts = ["grüezi chuchi", "merci", "fasnacht"]
    assert [row["predictions"] for row in rows if row["error"] is None] == model.geolocate(posts, top_k=2,
                                                                                            batch_size=1)


def test_blank_lines_before_a_one_column_header_are_not_rows(saved_model, tmp_path, monkeypatch, capsys):
    rows = run_all_ways(saved_model, tmp_path, monkeypatch, capsys, "\n \ntext\nmerci\n   \n", "csv")
    assert [(row["text"], row["error"]) for row in rows] == [("merci", None),
                                                              ("   ", "'text' is empty or whitespace only")]
