# Atlas — the two commands are `make run` and `make test`; both do the set-up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     := sample_db/atlas_sample.duckdb
HOST   ?= 127.0.0.1
PORT   ?= 7860

.PHONY: setup run test lint bench browser local-model test-local bench-local clean

setup: $(STAMP) $(DB)

# Debian's Chromium for the browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser test"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

# The sample database is rebuilt when its generator changes.
$(DB): $(STAMP) $(wildcard sample_db/*.py)
	$(BIN)/atlas sample-db --out $(DB)

run: setup
	$(BIN)/atlas ui --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .

test: setup lint browser
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/atlas bench sql --scale 10 --out bench-out/sql.json

# Optional: llama-cpp-python (a ~11 min source build) and the 1.1 GB local model, verified by
# SHA-256 into .atlas/models/. Never part of setup or CI.
local-model: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[local]'
	$(BIN)/python -m agent.model_fetch

test-local: local-model
	$(BIN)/python -m pytest -q -m local_llm tests/test_local_llm.py

# Atlas vs LangChain's SQL agent and one-shot text-to-SQL on the local model (~30-60 min).
bench-local: local-model
	$(BIN)/python -m pip install -q -e '.[local,peers]'
	$(BIN)/python benchmarks/bench_local_peers.py --resume

clean:
	rm -rf $(VENV) .atlas $(DB) sample_db/truth test-artifacts bench-out
