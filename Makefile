# Two entry points: `make run` (the daemon on config/monitor.toml, SQLite under data/) and `make test`.
# Both create .venv and install the project into it first, so they work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install browser clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test,browser]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/policy-monitor run

test: install browser
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -n auto --durations=15

# The browser test drives Debian's chromium through playwright. Install it where apt-get can (as root,
# or with password-less sudo); elsewhere say so and go on: that one test then skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	    echo "installing Debian's chromium for the browser test (apt-get)"; \
	    $$SUDO apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	    || echo "note: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium is not installed and apt-get is not usable here; the browser test will be skipped"; fi; }

clean:
	rm -rf $(VENV) data .pytest_cache
