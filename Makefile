# One command each for a fresh machine: `make demo` (the main job) and `make test`.
# Both build .venv from nothing: the runtime, the export extra and the dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TINY := tests/data/same-tiny

.PHONY: demo test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[export,dev]'
	touch $@

# Main job (until the bundled demo model lands): export the tiny SAME fixture to LiteRT,
# describe it, and round-trip a music excerpt through the exported graphs.
demo: $(BIN)/.installed
	$(BIN)/same-edge export --config $(TINY)/model_config.json --checkpoint $(TINY)/model.safetensors \
		--precision fp32 --out build/tiny-fp32
	$(BIN)/same-edge info build/tiny-fp32
	$(BIN)/python -m same_edge_export.music build/music.wav 12
	$(BIN)/same-edge roundtrip build/music.wav build/music-tiny-roundtrip.wav --model build/tiny-fp32

test: $(BIN)/.installed
	$(BIN)/ruff check same_edge export tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(BIN)/.installed
	$(BIN)/ruff check same_edge export tests benchmarks

clean:
	rm -rf $(VENV) build
