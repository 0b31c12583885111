# The two commands of README.md live here:  make demo  and  make test.
# The interpreter: the system's /usr/bin/python3 where it is 3.11 or newer and can make a virtual environment, else the
# first python3 on PATH. On Raspberry Pi OS the system's is the one the sleeve's service runs (`sudo make install`);
# Debian builds it with profile-guided and link-time optimisation, which a python3 built from source (pyenv's, say)
# usually lacks: the simulation runs 13-18 % less CPU a tick on it (README.md, Performance).
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do $$p -c 'import sys, ensurepip, venv; \
	sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; exit; }; done; echo python3)
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
# core, the safety rules, the sensor sweep, the loop, and the simulation (bus, chips, air, world, clock) - are compiled
# to C extensions by mypyc (mypy's compiler, from the lint extra), beside the rest as Python. The source tree stays pure
# Python. The copy is rebuilt whenever a source changes; running with PYTHONPATH=$(COMPILED) picks it up, and
# `legsleeve` refuses a copy older than its sources (legsleeve/_compiled.py).
COMPILED ?= .compiled
COMPILED_MODULES := core/commands core/readings core/controller core/refill core/limits core/plan core/units \
	safety/supervisor safety/estop safety/exposure safety/leak safety/occlusion safety/overpressure \
	safety/plausibility safety/progress safety/sensors safety/shared safety/trip safety/venting \
	hw/i2c hw/sensors app/runner app/sessionlog app/summary app/replay \
	sim/physics sim/bus sim/faults sim/chips sim/world core/clock
SOURCES := $(shell find firmware/legsleeve -name '*.py' -o -name '*.html' -o -name '*.js' -o -name '*.css')
# Built in $(COMPILED).tmp and moved into place whole once stamped: an interrupted build leaves no copy to run.
# -ffp-contract=off: no fused multiply-add (aarch64's compilers fuse by default), so that compiled arithmetic rounds as
# Python's does, step by step, and a compiled session logs what the sources log on any machine.
$(COMPILED)/.built: $(VENV)/.installed-test $(SOURCES) Makefile
	rm -rf $(COMPILED) $(COMPILED).tmp
	mkdir -p $(COMPILED).tmp
	cp -rp firmware/legsleeve $(COMPILED).tmp/
	find $(COMPILED).tmp -name __pycache__ -prune -exec rm -rf {} +
	cd $(COMPILED).tmp && CFLAGS="$$CFLAGS -ffp-contract=off" $(abspath $(BIN))/mypyc --config-file /dev/null --python-version 3.11 --ignore-missing-imports \
		--check-untyped-defs $(COMPILED_MODULES:%=legsleeve/%.py) > build.log 2>&1 || { tail -40 build.log; exit 1; }
	$(BIN)/python -c 'import sys; from legsleeve._compiled import stamp; stamp(*sys.argv[1:])' \
		firmware/legsleeve $(COMPILED).tmp/legsleeve $(COMPILED)/legsleeve
	mv $(COMPILED).tmp $(COMPILED)
	touch $@

compiled: $(COMPILED)/.built

# Everything the tests need, then the tests, in parallel on every core (pytest-xdist), on the compiled build. Only
# where it cannot be built - no C compiler, or no Python headers - do the tests run on the sources, saying so (an
# error under LEGSLEEVE_REQUIRE_COMPILED, which CI sets); any other failure of the build fails the target.
# LEGSLEEVE_EXPECT_BUILD makes the tests refuse to run on any other build than the one named (tests/conftest.py).
CAN_COMPILE = command -v cc >/dev/null 2>&1 && $(BIN)/python -c \
	'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
test: $(VENV)/.installed-test
	@if $(CAN_COMPILE); then $(MAKE) --no-print-directory compiled || exit 1; pp=$(COMPILED); build=compiled; \
	elif [ -n "$$LEGSLEEVE_REQUIRE_COMPILED" ]; then echo "make test: no C compiler or no Python headers" >&2; exit 1; \
	else pp=; build=pure; echo "make test: no C compiler or no Python headers for the compiled build:" \
		"testing the pure-Python sources instead" >&2; fi; \
	echo "PYTHONPATH=$$pp $(BIN)/python -m pytest -q"; \
	PYTHONPATH=$$pp LEGSLEEVE_EXPECT_BUILD=$$build $(BIN)/python -m pytest -q

# The same suite on the pure-Python source tree: what the sleeve runs (make install installs it).
test-pure: $(VENV)/.installed-test
	PYTHONPATH= LEGSLEEVE_EXPECT_BUILD=pure $(BIN)/python -m pytest -q

# `legsleeve bench` on the compiled build, whose figures the performance targets are set for (README.md, Performance);
# it also times the pure sources' tick.
bench: $(COMPILED)/.built
	PYTHONPATH=$(COMPILED) $(BIN)/legsleeve bench

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
	rm -rf $(VENV) $(OUT) .pytest_cache $(COMPILED) $(COMPILED).tmp

# On the Raspberry Pi, as root: the service, its user, config in /etc/legsleeve, the Pi's boot settings. The user who
# ran `sudo make install` joins the groups legsleeve, gpio and i2c (`make install LOGIN_USER=` to leave them out).
LOGIN_USER ?= $(filter-out root,$(SUDO_USER))
install:
	$(PYTHON) systemd/install.py install $(if $(LOGIN_USER),--login-user $(LOGIN_USER))

uninstall:
	$(PYTHON) systemd/install.py uninstall
