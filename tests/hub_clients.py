"""Client code run against the Hub stand-in (`hub_stand_in.py`) in a fresh Python: huggingface_hub reads HF_ENDPOINT
when imported, and the test process is offline (conftest)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs first in every client: a host other than the loopback fails at once, so that a client reaching for the real
# Hub (or the datasets-server) fails the test instead of going online.
LOOPBACK_ONLY = """
import json, socket, sys
_getaddrinfo = socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise socket.gaierror(f"tests may reach only the Hub stand-in, not {host}")
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = _loopback_only
ARGS = json.loads(sys.argv[1])
"""

def run_client(hub, hf_home, script, cwd=REPO_ROOT, extra_env=None, **args):
    """Run `script` against `hub` in a fresh Python with `args` as ARGS (and `extra_env` added to its environment);
    returns its RESULT (through JSON)."""
    args.setdefault("package_root", str(REPO_ROOT))
    code = LOOPBACK_ONLY + textwrap.dedent(script) + "\nprint('RESULT' + json.dumps(RESULT))\n"
    env = {**hub.client_env(hf_home), **(extra_env or {})}
    completed = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=cwd, env=env,
                               capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr[-4000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


# Prepended to a client that must work without this project (what it needs comes from the Hub): hides the project
# from sys.path and from an editable install's import finder.
HIDE_PROJECT = """
import importlib.abc
sys.path = [p for p in sys.path if p not in ("", ".", ARGS["package_root"])]
class HideProjectPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_contrastgeo", "contrastgeo", "datasets_scripts"):
            raise ImportError(f"{name} is hidden from this process")
sys.meta_path.insert(0, HideProjectPackages())
"""

# Only the repo's own .py files may define the model.
REMOTE_CODE = HIDE_PROJECT + """
from transformers import AutoModel
model = AutoModel.from_pretrained(ARGS["repo"], trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
RESULT = model.geolocate(ARGS["posts"], top_k=ARGS["top_k"])
"""
