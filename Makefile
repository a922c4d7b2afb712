# The two commands a newcomer needs: `make run` (a server on the embedded store)
# and `make test` (installs what the tests need, then runs them).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PROTO_OUT ?= clients/python/src
PROTOS := $(shell find protos -name '*.proto')

.PHONY: setup run test lint proto stubs bench redis-server clean

$(INSTALLED): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'clients/python[cli]' -e '.[dev]'
	touch $@

setup: $(INSTALLED) redis-server

## run: serve on 127.0.0.1:50051 with the in-memory store, echo answering any agent id
## (ARGS="--store redis://..." to add or change settings)
run: $(INSTALLED)
	$(BIN)/session-server --default-agent echo $(ARGS)

## test: the whole suite; Redis tests start their own redis-server on free ports
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint

## proto: regenerate the stubs (and .pyi) that are committed under clients/python/src
proto: $(INSTALLED) stubs

# The generation itself, with no install step: the tests run it with their own interpreter.
stubs:
	$(BIN)/python -m grpc_tools.protoc -I protos \
		--python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
		--grpc_python_out=$(PROTO_OUT) \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:$(PROTO_OUT) \
		$(PROTOS)

bench: setup
	$(BIN)/python -m bench

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq redis-server; \
		else \
			echo "redis-server is missing: install Debian's redis-server package" >&2; exit 1; \
		fi; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
