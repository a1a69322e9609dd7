# Two set-up commands: `make up` runs the whole local service, `make test` runs every check.
# Both create .venv and install the project on first use; `make install` is idempotent.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install prometheus up down status test lint typecheck contracts unit integration e2e bench-up clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The development tools (devtools/, model_sim/) are not in the wheel: put the checkout itself
	@# on the venv's path so they import here too.
	$(BIN)/python -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "eco2-checkout.pth").write_text(str(pathlib.Path.cwd()) + "\n")'
	@$(MAKE) --no-print-directory prometheus
	@touch $(STAMP)

# Optional: Debian's Prometheus (and promtool) for the local stack's metrics; no pip package has
# it. Skipped, saying so, where apt or root is missing: the stack then runs without it.
prometheus:
	@if command -v prometheus >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1) \
	  || echo "prometheus: apt-get could not install it; the stack runs without it"; \
	else echo "prometheus: not installed (needs apt-get as root); the stack runs without it"; fi

up: install
	$(BIN)/eco2 up

down: install
	$(BIN)/eco2 down

status: install
	$(BIN)/eco2 status

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest tests/unit -q

integration: install
	$(BIN)/pytest tests/integration -q

e2e: install
	$(BIN)/pytest tests/e2e -q

test: lint typecheck contracts
	$(BIN)/pytest tests -q -p no:cacheprovider

bench-up: install
	$(BIN)/eco2 bench up --json

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache
