"""The Hub stand-in serves the real huggingface_hub / datasets / transformers clients: push, download, load, errors.

Clients run in subprocesses: huggingface_hub reads HF_ENDPOINT when imported, and this process is offline (conftest).
"""

import json
import random
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.hub_clients import REMOTE_CODE, run_client

UPLOAD = """
from huggingface_hub import HfApi
api = HfApi()
api.create_repo(ARGS["repo"], repo_type=ARGS["type"], exist_ok=True)
RESULT = api.upload_folder(folder_path=ARGS["folder"], repo_id=ARGS["repo"], repo_type=ARGS["type"]).oid
"""

DOWNLOAD = """
from huggingface_hub import hf_hub_download, snapshot_download
where = dict(repo_id=ARGS["repo"], repo_type=ARGS["type"], revision=ARGS["revision"])
RESULT = {"files": {name: hf_hub_download(filename=name, **where) for name in ARGS["names"]},
          "snapshot": snapshot_download(**where)}
"""


def write_folder(folder: Path, files: dict) -> dict:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def upload(hub, hf_home, repo, folder, repo_type="model"):
    oid = run_client(hub, hf_home, UPLOAD, repo=repo, type=repo_type, folder=str(folder))
    assert re.fullmatch(r"[0-9a-f]{40}", oid)
    return oid


def assert_downloads(hub, hf_home, repo, expected, repo_type="model", revision="main"):
    """hf_hub_download of each file and snapshot_download both give back exactly `expected` ({path: bytes})."""
    result = run_client(hub, hf_home, DOWNLOAD, repo=repo, type=repo_type, revision=revision, names=sorted(expected))
    assert {name: Path(path).read_bytes() for name, path in result["files"].items()} == expected
    snapshot = Path(result["snapshot"])
    assert {p.relative_to(snapshot).as_posix(): p.read_bytes() for p in snapshot.rglob("*") if p.is_file()} == expected


def test_model_repo_push_download_and_new_commit(hub_stand_in, tmp_path):
    hf_home = tmp_path / "hf_home"  # one cache for all steps: the second download must not serve stale bytes
    first = write_folder(tmp_path / "v1", {
        "config.json": b'{"model_type": "toy"}\n', "README.md": b"# toy\n", "notes.txt": "grüezi\n".encode(),
        "sub/vocab.txt": b"a\nb\nc\n", "model.safetensors": random.Random(0).randbytes(1 << 20)})
    first_oid = upload(hub_stand_in, hf_home, "user/toy", tmp_path / "v1")
    assert hub_stand_in.files("user/toy") == first
    assert_downloads(hub_stand_in, hf_home, "user/toy", first)

    second = write_folder(tmp_path / "v2", {**first, "notes.txt": b"changed\n",
                                            "model.safetensors": random.Random(1).randbytes(1 << 20)})
    second_oid = upload(hub_stand_in, hf_home, "user/toy", tmp_path / "v2")
    assert second_oid != first_oid
    assert hub_stand_in.files("user/toy") == second
    assert hub_stand_in.files("user/toy", revision=first_oid) == first
    assert_downloads(hub_stand_in, hf_home, "user/toy", second)
    assert_downloads(hub_stand_in, hf_home, "user/toy", first, revision=first_oid)
    assert ("POST", "/api/models/user/toy/commit/main") in hub_stand_in.requests


TOYSET_README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train.parquet
  - split: test
    path: data/test.parquet
---
# toyset
"""

LOAD_DATASET = """
import datasets
from huggingface_hub import HfApi, HfFileSystem
# The Parquet export is served by datasets-server.<endpoint host>, which the stand-in is not.
datasets.config.USE_PARQUET_EXPORT = False
loaded = datasets.load_dataset(ARGS["repo"])
with HfFileSystem().open(f"datasets/{ARGS['repo']}/data/train.parquet", "rb") as file:
    file.seek(-4, 2)  # a ranged read, as fsspec readers do
    tail = file.read().decode()
paths = HfApi().get_paths_info(ARGS["repo"], ["data", "README.md", "nope.txt"], repo_type="dataset")
RESULT = {"splits": {split: loaded[split].to_dict() for split in loaded}, "tail": tail,
          "paths_info": [[type(entry).__name__, entry.path] for entry in paths]}
"""


def test_dataset_repo_push_download_and_load_dataset(hub_stand_in, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    hf_home, folder = tmp_path / "hf_home", tmp_path / "toyset"
    rows = {"train": {"text": ["grüezi", "merci", "ciao"], "label": [0, 1, 2]},
            "test": {"text": ["hoi"], "label": [0]}}
    (folder / "data").mkdir(parents=True)
    for split, columns in rows.items():
        pq.write_table(pa.table(columns), folder / "data" / f"{split}.parquet")
    (folder / "README.md").write_text(TOYSET_README)
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    upload(hub_stand_in, hf_home, "user/toyset", folder, repo_type="dataset")
    assert hub_stand_in.files("user/toyset", repo_type="dataset") == expected
    assert_downloads(hub_stand_in, hf_home, "user/toyset", expected, repo_type="dataset")
    # A fresh cache, so that load_dataset downloads the data files itself.
    loaded = run_client(hub_stand_in, tmp_path / "hf_home_load", LOAD_DATASET, repo="user/toyset")
    assert loaded == {"splits": rows, "tail": "PAR1", "paths_info": [["RepoFolder", "data"], ["RepoFile", "README.md"]]}


ERRORS = """
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
api = HfApi()
api.create_repo("user/toy")
api.upload_file(path_or_fileobj=b"hi", path_in_repo="hi.txt", repo_id="user/toy")
cases = {
    "missing file": (EntryNotFoundError, lambda: hf_hub_download("user/toy", "missing.txt")),
    "unknown repo": (RepositoryNotFoundError, lambda: hf_hub_download("user/nope", "hi.txt")),
    "unknown dataset": (RepositoryNotFoundError, lambda: api.dataset_info("user/toy")),
    "unknown revision": (RevisionNotFoundError, lambda: hf_hub_download("user/toy", "hi.txt", revision="nope")),
}
RESULT = {}
for case, (expected, call) in cases.items():
    try:
        call()
        RESULT[case] = "no error"
    except Exception as error:
        RESULT[case] = expected.__name__ if isinstance(error, expected) else repr(error)
"""


def test_errors_reach_the_client_as_hub_errors(hub_stand_in, tmp_path):
    result = run_client(hub_stand_in, tmp_path / "hf_home", ERRORS)
    assert result == {"missing file": "EntryNotFoundError", "unknown repo": "RepositoryNotFoundError",
                      "unknown dataset": "RepositoryNotFoundError", "unknown revision": "RevisionNotFoundError"}

    def head_error_code(path):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            opener.open(urllib.request.Request(hub_stand_in.endpoint + path, method="HEAD"), timeout=10)
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("X-Error-Code")
        return 200, None

    assert head_error_code("/user/toy/resolve/main/missing.txt") == (404, "EntryNotFound")
    assert head_error_code("/user/nope/resolve/main/hi.txt") == (404, "RepoNotFound")
    assert head_error_code("/user/toy/resolve/main/hi.txt") == (200, None)


@pytest.mark.slow
def test_remote_code_model_loads_through_the_stand_in(hub_stand_in, tmp_path, minilm_path):
    import torch
    from transformers import AutoModel

    from modeling_contrastgeo import ContrastGeoModel
    from tests.tiny_models import SWISS_PLACES, make_tiny_encoder

    encoder = make_tiny_encoder(tmp_path / "tiny-bert", minilm_path)
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(encoder, places=SWISS_PLACES, projection_dim=16)
    model.save_pretrained(tmp_path / "tiny")
    posts = ["Grüezi mitenand", "Basler Fasnacht isch s Beschte"]
    expected = json.loads(json.dumps(AutoModel.from_pretrained(tmp_path / "tiny").geolocate(posts, top_k=1)))

    upload(hub_stand_in, tmp_path / "hf_home", "user/tiny", tmp_path / "tiny")
    result = run_client(hub_stand_in, tmp_path / "hf_home", REMOTE_CODE, cwd=tmp_path, repo="user/tiny",
                        posts=posts, top_k=1)
    assert result == expected
