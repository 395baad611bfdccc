# storyclust: `make run` clusters data/samples/ with the default model; `make test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench bench-speed bench-embed bench-year clean

# Set-up output goes to stderr, so that `make run | jq` sees only stories on stdout.
# torch==2.13.0 in the same command keeps pip on the CPU wheel.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2 || python3 -m venv $(VENV) >&2
	@echo "installing storyclust and its dependencies into $(VENV) (once)" >&2
	@$(BIN)/pip install --quiet --upgrade pip >&2
	@$(BIN)/pip install --quiet "torch==2.13.0" -e ".[test,bench,ray]" >&2
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/storyclust run data/samples/

test: $(STAMP)
	$(BIN)/python -m pytest -q tests/

bench: $(STAMP)
	$(BIN)/python bench/bench_quality.py

bench-speed: $(STAMP)
	$(BIN)/python bench/bench_speed.py

bench-embed: $(STAMP)
	$(BIN)/python bench/bench_embed.py

bench-year: $(STAMP)
	$(BIN)/python bench/bench_year.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
