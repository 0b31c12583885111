# The two commands of README.md live here:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
OUT ?= out

.PHONY: demo test test-pure compiled bench lint venv clean install uninstall vpi

# A virtual environment with legsleeve and the plotting and web extras, installed editable from this checkout.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[plot,web]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[plot,test,lint,schematic,web]'
	touch $@

venv: $(VENV)/.installed

# A simulated sleeve doing its job: three cycles of the default profile, with its log and plot in out/.
demo: $(VENV)/.installed
	$(BIN)/legsleeve check-config
	$(BIN)/legsleeve simulate --cycles 3 --log $(OUT)/demo.csv --plot $(OUT)/demo.png

# The compiled build (README.md, Performance): a copy of the package in $(COMPILED)/ whose per-tick modules - the control
# core, the safety rules, the sensor sweep, the loop, and the simulation's bus and physics - are compiled to C
# extensions by mypyc (mypy's compiler, from the lint extra), beside the rest as Python. The source tree stays pure
# Python. The copy is rebuilt whenever a source changes; running with PYTHONPATH=$(COMPILED) picks it up, and
# `legsleeve` refuses a copy older than its sources (legsleeve/_compiled.py).
COMPILED ?= .compiled
COMPILED_MODULES := core/commands core/readings core/controller core/refill core/limits core/plan core/units \
	safety/supervisor safety/estop safety/exposure safety/leak safety/occlusion safety/overpressure \
	safety/plausibility safety/progress safety/sensors safety/shared safety/trip safety/venting \
	hw/i2c hw/sensors app/runner app/sessionlog app/summary app/replay \
	sim/physics sim/bus sim/faults
SOURCES := $(shell find firmware/legsleeve -name '*.py' -o -name '*.html' -o -name '*.js' -o -name '*.css')
$(COMPILED)/.built: $(VENV)/.installed-test $(SOURCES)
	rm -rf $(COMPILED)
	mkdir -p $(COMPILED)
	cp -rp firmware/legsleeve $(COMPILED)/
	find $(COMPILED) -name __pycache__ -prune -exec rm -rf {} +
	cd $(COMPILED) && $(abspath $(BIN))/mypyc --config-file /dev/null --python-version 3.11 --ignore-missing-imports \
		--check-untyped-defs $(COMPILED_MODULES:%=legsleeve/%.py) > build.log 2>&1 || { tail -40 build.log; rm -rf legsleeve; exit 1; }
	$(BIN)/python -c 'import sys; from legsleeve._compiled import stamp; stamp(*sys.argv[1:])' firmware/legsleeve $(COMPILED)/legsleeve
	touch $@

compiled: $(COMPILED)/.built

# Everything the tests need, then the tests, in parallel on every core (pytest-xdist), on the compiled build. Where
# it cannot be built (no C compiler or no Python headers) the tests run on the sources, saying so - unless
# LEGSLEEVE_REQUIRE_COMPILED is set (CI), which makes that an error.
test: $(VENV)/.installed-test
	@if $(MAKE) --no-print-directory compiled; then pp=$(COMPILED); \
	elif [ -n "$$LEGSLEEVE_REQUIRE_COMPILED" ]; then echo "make test: the compiled build failed" >&2; exit 1; \
	else pp=; echo "make test: the compiled build failed (above; it needs a C compiler and Python's headers):" \
		"testing the pure-Python sources instead" >&2; fi; \
	echo "PYTHONPATH=$$pp $(BIN)/python -m pytest -q"; PYTHONPATH=$$pp $(BIN)/python -m pytest -q

# `legsleeve bench` on the compiled build, whose figures the performance targets are set for (README.md, Performance);
# it also times the pure sources' tick.
bench: $(COMPILED)/.built
	PYTHONPATH=$(COMPILED) $(BIN)/legsleeve bench

# The same tests on the pure-Python source tree (what the sleeve runs: make install installs it), all but the slow
# end-to-end ones.
test-pure: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow"

# Lint, format and types: ruff on everything, mypy (strict on core/ and safety/, see pyproject.toml).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict firmware/legsleeve/core firmware/legsleeve/safety

# The virtual Raspberry Pi (docs/virtual-pi.md): builds or reuses a Debian arm64 image in $(VPI_CACHE), boots it
# under QEMU, installs this working tree as README tells a Pi owner, and runs the checks inside (pytest -m vpi).
# Building needs root, debootstrap, qemu-user-static, qemu-system-arm, device-tree-compiler (.ci/run installs them).
VPI_CACHE ?= $(or $(LEGSLEEVE_VPI_CACHE),$(HOME)/.cache/legsleeve-vpi)
vpi: $(VENV)/.installed-test
	LEGSLEEVE_VPI_CACHE=$(VPI_CACHE) $(BIN)/python -m pytest -m vpi -n0 -s -p no:cacheprovider -rA tests/test_vpi.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache $(COMPILED)

# On the Raspberry Pi, as root: the service, its user, config in /etc/legsleeve, the Pi's boot settings. The user who
# ran `sudo make install` joins the groups legsleeve, gpio and i2c (`make install LOGIN_USER=` to leave them out).
LOGIN_USER ?= $(filter-out root,$(SUDO_USER))
install:
	$(PYTHON) systemd/install.py install $(if $(LOGIN_USER),--login-user $(LOGIN_USER))

uninstall:
	$(PYTHON) systemd/install.py uninstall
