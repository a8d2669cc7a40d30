# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_ENV := TRADEFORGE__DATA__SOURCE=replay TRADEFORGE__DATA__SPEED=max TRADEFORGE__DATA_DIR=$(VENV)/demo-data

# The main job on embedded defaults: a paper bot replaying the bundled sample candles at full speed,
# persisting to SQLite, printing each trade as it closes and a summary at the end.
demo: $(STAMP)
	rm -rf $(VENV)/demo-data
	$(BIN)/tradeforge new-config --template sma_cross --output $(VENV)/demo-bot.yaml --force
	$(DEMO_ENV) $(BIN)/tradeforge db upgrade --config $(VENV)/demo-bot.yaml
	$(DEMO_ENV) $(BIN)/tradeforge run --config $(VENV)/demo-bot.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check tradeforge tests benchmarks
	$(BIN)/ruff format --check tradeforge tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/backtest_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
