# The two commands of README.md live here:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
OUT ?= out

.PHONY: demo test lint venv clean install uninstall

# A virtual environment with legsleeve and the plotting extra, installed editable from this checkout.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[plot]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[plot,test,lint,schematic]'
	touch $@

venv: $(VENV)/.installed

# A simulated sleeve doing its job: three cycles of the default profile, with its log and plot in out/.
demo: $(VENV)/.installed
	$(BIN)/legsleeve check-config
	$(BIN)/legsleeve simulate --cycles 3 --log $(OUT)/demo.csv --plot $(OUT)/demo.png

# Everything the tests need, then the tests, in parallel on every core (pytest-xdist).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

# Lint, format and types: ruff on everything, mypy (strict on core/ and safety/, see pyproject.toml).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict firmware/legsleeve/core firmware/legsleeve/safety

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

# On the Raspberry Pi, as root: the service, its user, config in /etc/legsleeve, the Pi's boot settings.
install:
	$(PYTHON) systemd/install.py install

uninstall:
	$(PYTHON) systemd/install.py uninstall
