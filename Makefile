# The two commands a newcomer needs: `make run` (a server on the embedded store)
# and `make test` (installs what the tests need, then runs them).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What the server needs to run, and on top of it the dev toolchain (tests, lint, stubs).
RUNTIME := $(VENV)/.installed-runtime
INSTALLED := $(VENV)/.installed
PROTO_OUT ?= clients/python/src
PROTOS := $(shell find protos -name '*.proto')
# The googleapis .proto files (google/api/field_behavior.proto) ship in the installed
# googleapis-common-protos package: protoc reads them there, never from a copy here.
GOOGLEAPIS = $(shell $(BIN)/python -c 'import google.api.field_behavior_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')
# The contract as protoc compiles it, for buf to lint and to compare with the baseline.
CONTRACT_IMAGE := build/contract.binpb
# v1 as it was frozen: `buf breaking` keeps every later change additive.
CONTRACT_BASELINE := protos/agentsessions-v1.binpb

.PHONY: setup run test lint proto stubs sync-client contract contract-baseline bench soak redis-server clean

$(RUNTIME): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e clients/python -e .
	touch $@

$(INSTALLED): $(RUNTIME)
	$(BIN)/pip install --quiet -e 'clients/python[cli]' -e '.[dev]'
	touch $@

setup: $(INSTALLED) redis-server

## run: serve on 127.0.0.1:50051 with the in-memory store, echo answering any agent id
## (ARGS="--store redis://..." to add or change settings)
run: $(RUNTIME)
	$(BIN)/session-server --default-agent echo $(ARGS)

## test: the whole suite; Redis tests start their own redis-server on free ports
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(INSTALLED) contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint $(CONTRACT_IMAGE) --path agentsessions
	$(BIN)/buf breaking $(CONTRACT_IMAGE) --path agentsessions --against $(CONTRACT_BASELINE)

# buf reads the contract through protoc, which finds the googleapis imports in the
# installed package (buf itself would fetch them from the network).
contract: $(INSTALLED)
	@mkdir -p $(dir $(CONTRACT_IMAGE))
	$(BIN)/python -m grpc_tools.protoc -I protos -I $(GOOGLEAPIS) --include_imports \
		--include_source_info --descriptor_set_out=$(CONTRACT_IMAGE) $(PROTOS)

## contract-baseline: freeze the contract as buf breaking's reference (only for a new major version)
contract-baseline: $(INSTALLED)
	$(BIN)/python -m grpc_tools.protoc -I protos -I $(GOOGLEAPIS) --include_imports \
		--descriptor_set_out=$(CONTRACT_BASELINE) $(PROTOS)

## sync-client: regenerate the blocking client (_sync.py) from the asyncio one (_async.py)
sync-client: $(INSTALLED)
	$(BIN)/python clients/python/scripts/unasync.py

## proto: regenerate the stubs (and .pyi) that are committed under clients/python/src
proto: $(INSTALLED) stubs

# The generation itself, with no install step: the tests run it with their own interpreter.
stubs:
	$(BIN)/python -m grpc_tools.protoc -I protos -I $(GOOGLEAPIS) \
		--python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
		--grpc_python_out=$(PROTO_OUT) \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:$(PROTO_OUT) \
		$(PROTOS)

bench: setup
	$(BIN)/python -m bench

## soak: 30 minutes of mixed traffic on 2 servers and Sentinel-managed Redis, a fault every
## minute (docs/soak.md; ARGS="--minutes 3" for a short one); not part of `make test`
soak: setup
	$(BIN)/python -m bench.soak $(ARGS)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq redis-server; \
		else \
			echo "redis-server is missing: install Debian's redis-server package" >&2; exit 1; \
		fi; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
