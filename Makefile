# Two commands on a fresh machine (see README):
#   make lab    set everything up and open the tutorial in JupyterLab
#   make test   set everything up and run every test: library tests, child-process tests, notebooks under
#               nbval (quick mode), the notebooks offline on fallback data, the browser test; five pytest
#               processes in turn (scripts/run_tests.py)
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
.PHONY: setup lab test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,browser]"
	touch $@

lab: setup
	$(VENV)/bin/jupyter lab notebooks/01_local_vi.ipynb

test: setup
	@# the browser test drives Debian's Chromium (Playwright's own download cannot run here): install it once
	@test -x /usr/bin/chromium || { echo "installing Debian chromium for tests/test_browser.py (once)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; } || \
	  echo "could not install chromium (needs root): the browser test will fail; INFERNET_REQUIRE_BROWSER=0 skips it"; }
	INFERNET_QUICK=$${INFERNET_QUICK:-1} INFERNET_REQUIRE_BROWSER=$${INFERNET_REQUIRE_BROWSER:-1} \
	  $(PY) scripts/run_tests.py

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
