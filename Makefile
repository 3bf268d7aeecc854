# Two entry points, each self-contained on a machine with only Python 3.11:
#   make demo   create .venv, install lrjax, run the main job (a learning-rate sweep on digits)
#   make test   create .venv, install lrjax with dev extras, lint (ruff, basedpyright), then run the test suite
#               through nox on the lowest supported JAX (Python 3.11) and the newest (3.12, 3.13)
#   make quick  the test suite once, in .venv (the JAX that pip resolves for Python 3.11)
#   make notebooks   open notebooks/ in JupyterLab, in the project's environment
#   make docs   build the documentation site into docs/_build/html (warnings are errors)
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo lint test quick notebooks docs clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lrjax sweep --task digits_mlp --optimizer adam --num 32 --steps 1000 --batch-size 64
	$(BIN)/lrjax schedules --steps 1000 --out lrjax-schedules.png

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/basedpyright -p .

test: lint
	$(BIN)/nox

quick: lint
	$(BIN)/python -m pytest -q -n 2

notebooks: $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[notebook]'
	$(BIN)/jupyter lab notebooks

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

clean:
	rm -rf $(VENV) .nox .pytest_cache .hypothesis docs/_build docs/notebooks docs/generated
