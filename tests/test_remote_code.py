"""A saved model loads with AutoModel where the package is not importable (remote code), offline, identically."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel

import modeling_contrastgeo
from modeling_contrastgeo import ContrastGeoModel
from tests.tiny_models import SWISS_PLACES, make_tiny_encoder

POSTS = ["Grüezi mitenand", "Basler Fasnacht isch s Beschte", "Bärn isch schön"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_path):
    encoder = make_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), minilm_path)
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(
        encoder, places=SWISS_PLACES, location_mode="hybrid", projection_dim=16, location_hidden_size=32,
        prompt_templates=["A post from {name}.", "{name}"],
    )
    folder = tmp_path_factory.mktemp("saved")
    model.save_pretrained(folder)
    return folder


def test_saved_folder_contents(saved_model):
    files = set(os.listdir(saved_model))
    assert {"config.json", "model.safetensors", "tokenizer.json", "modeling_contrastgeo.py",
            "configuration_contrastgeo.py", "location_encoding.py", "losses.py", "csp_losses.py", "fusion.py",
            "csp_objectives.py", "char_ngrams.py", "text_encoder.py", "contrastgeo_objective.py"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    config = json.loads((saved_model / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_contrastgeo.ContrastGeoConfig",
                                  "AutoModel": "modeling_contrastgeo.ContrastGeoModel"}
    assert [p["name"] for p in config["places"]] == [p["name"] for p in SWISS_PLACES]


def test_package_load_keeps_everything(saved_model):
    model = AutoModel.from_pretrained(saved_model)
    assert isinstance(model, ContrastGeoModel)
    assert model.config.places == SWISS_PLACES and model.config.location_mode == "hybrid"
    again = AutoModel.from_pretrained(saved_model)
    assert model.geolocate(POSTS, top_k=4) == again.geolocate(POSTS, top_k=4)


def test_remote_code_without_the_package(saved_model, tmp_path):
    expected = AutoModel.from_pretrained(saved_model).geolocate(POSTS, top_k=4)
    package_root = os.path.dirname(os.path.dirname(modeling_contrastgeo.__file__))
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys
        sys.path = [p for p in sys.path if p not in ("", ".", {package_root!r})]

        # An editable install (pip install -e) finds the package through a meta-path finder, not sys.path: block
        # the project's packages at the front of the meta path so that only the saved folder's remote code is left.
        class HideProjectPackages(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("modeling_contrastgeo", "contrastgeo", "datasets_scripts"):
                    raise ImportError(f"{{name}} is hidden from this process")
                return None

        sys.meta_path.insert(0, HideProjectPackages())
        try:
            import modeling_contrastgeo
            raise SystemExit("the package is importable: this test would prove nothing")
        except ImportError:
            pass
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(saved_model)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        print("RESULT" + json.dumps(model.geolocate({POSTS!r}, top_k=4)))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT"))
    assert json.loads(line[len("RESULT"):]) == expected
