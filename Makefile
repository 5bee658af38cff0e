# Everything a newcomer or CI needs; each target installs what it is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
PROTOS := $(wildcard proto/claudecode/v1/*.proto)

.PHONY: install run test proto proto-check lint bench demo clean system-deps test-deps

install: $(STAMP)

# Debian packages: Claude Code's bash sandbox needs bubblewrap and socat; the
# tests also need PostgreSQL (a throwaway server per run) and Chromium (the
# admin site's browser tests). Installed only when missing, only as root.
SANDBOX_PACKAGES := bubblewrap socat
TEST_PACKAGES := postgresql chromium

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null); \
	  else echo "please install:$$missing"; exit 1; fi; \
	fi
endef

system-deps:
	$(call apt_install,$(SANDBOX_PACKAGES))

test-deps: system-deps
	$(call apt_install,$(TEST_PACKAGES))

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(BUF):
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --silent --no-audit --no-fund --no-save @bufbuild/buf@1.75.0 >/dev/null

# Generated code is checked in; `make proto` rebuilds it byte for byte.
proto: $(STAMP)
	rm -rf claudecode/v1
	mkdir -p claudecode/v1
	$(PY) -m grpc_tools.protoc -I proto \
	  --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy \
	  --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc \
	  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTOS)
	touch claudecode/__init__.py claudecode/v1/__init__.py claudecode/py.typed

proto-check: proto
	@git diff --exit-code --stat -- claudecode || (echo "generated code is stale: run make proto and commit" && exit 1)
	@test -z "$$(git status --porcelain -- claudecode)" || (git status --porcelain -- claudecode; echo "generated code is not committed" && exit 1)

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(BUF) lint
	$(VENV)/bin/mypy ccapi_client core_service http_facade admin_web tests

test: $(STAMP) test-deps proto-check lint
	$(VENV)/bin/pytest -q

run: $(STAMP)
	$(VENV)/bin/ccapi serve

bench: $(STAMP) test-deps
	$(PY) -m tests.bench
	$(PY) -m tests.usage_bench --engine all

demo: $(STAMP)
	$(PY) -m tests.demo

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .pytest_cache .ruff_cache
