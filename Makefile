# ContrastGeo: the commands of README.md.
PYTHON ?= python3
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install quickstart test test-fast benchmark benchmark-fast space tasks

# torch first from its pinned CPU build: an unpinned torch would pull gigabytes of CUDA packages.
install:
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[dev]"
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) \
		|| echo "chromium not installed: the browser test of the Space will be skipped"

# Build the default task from vendored data, train the default few-shot model, compare with baselines, demo it.
quickstart: install
	$(PYTHON) -m contrastgeo.quickstart

test:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

test-fast:
	$(PYTHON) -m pytest -q -p no:cacheprovider -m "not slow and not browser" tests

benchmark:
	$(PYTHON) benchmarks/run_benchmark.py --mode standard

benchmark-fast:
	$(PYTHON) benchmarks/run_benchmark.py --mode fast

space:
	$(PYTHON) space/app.py

tasks:
	for task in vardial-ch vardial-bcms midwest-2017 midwest-2017-meta umass-global; do \
		$(PYTHON) -m datasets_scripts build --task $$task --output-dir data_cache/$$task || exit 1; done
