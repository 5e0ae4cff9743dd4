# attt — make targets. `make demo` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the checks and tests drive: nmap (ports), openssh (ssh + test sshd), openssl,
# gnutls-bin and nginx (TLS test servers), chromium (HTML report tests), strace (the test that
# audits every connection a scan makes), redis-server (the broker the celery engine's tests
# start), sudo (the authenticated SSH probe through sudo -n), vsftpd (FTP servers with and
# without AUTH TLS for the FTPS tests), Pango (WeasyPrint lays out report.pdf with it), ICU
# headers, pkg-config and g++ (PyICU, the Vietnamese collation, builds against them),
# poppler-utils (tests turn PDF pages into images), postgresql (the tests start a real server
# for the shared run store; its binaries live in /usr/lib/postgresql/N/bin, off PATH, hence
# SYSTEM_FILES), xauth (sshd grants X11 forwarding only with it: the forwarding tests ask a real
# sshd for it; openssh-server merely recommends it).
SYSTEM_PACKAGES := nmap redis-server openssh-server openssh-client openssl gnutls-bin nginx-light chromium iproute2 strace sudo vsftpd \
  libpango-1.0-0 libpangoft2-1.0-0 libicu-dev pkg-config g++ poppler-utils postgresql xauth
SYSTEM_COMMANDS := nmap ip redis-server sshd ssh-keygen openssl gnutls-serv nginx chromium strace sudo vsftpd pkg-config g++ pdftoppm xauth
SYSTEM_LIBRARIES := libpango-1.0.so.0 libpangoft2-1.0.so.0 libicui18n.so
SYSTEM_FILES := /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/postgres

.PHONY: install system-deps demo test test-fast lint bench schema clean

install: $(VENV)/.installed

system-deps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	for l in $(SYSTEM_LIBRARIES); do ldconfig -p | grep -q "/$$l$$" || missing="$$missing $$l"; done; \
	for f in $(SYSTEM_FILES); do [ -x "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing commands:$$missing"; \
	    echo "install them with: sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

# The venv is rebuilt when pyproject.toml changes: entry points are package metadata.
$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[dev,celery]'
	touch $@

demo: install
	$(BIN)/python -m tests.demo

# mypy and import-linter read the package through `attt/` (its links name every module
# attt.<folder>.<module>); ruff reads the folders themselves.
LINT_PATHS := attt/__init__.py attt/plugin.py scanner checks reports tests

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy attt tests
	$(BIN)/lint-imports

# The tests wait on servers and timeouts far more than they compute: as root they run in three
# workers, each in a network namespace of its own (tests/isolation.py); otherwise one at a time.
TEST_WORKERS ?= $(if $(filter 0,$(shell id -u)),3,0)

test: install lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not browser and not slow"

# Speed goals live here, never in timed tests: one table of issue 14's goals, each row attt
# against its peer (medians of 5 alternating runs), appended to tests/bench/results.json. The
# other tests/bench/bench_*.py modules measure one part in more detail, run on their own.
bench: install
	$(BIN)/python -m tests.bench.bench_goals

schema: install
	$(BIN)/attt schema > docs/report.schema.json

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis attt-reports test-artifacts .demo
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
