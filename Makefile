# Two commands do all set-up on a fresh machine:
#   make run    start ComfyUI with this pack on 127.0.0.1:8188 (HOST=..., PORT=... to change)
#   make test   set everything up and run the whole test suite
# on the pinned ComfyUI (0.3.75). `make test-current` runs the same suite on the current
# release (0.33.0) in its own environment, from the source tree in ../shared/hosts/ (a
# project CI host: users never need it). `make test-frontend-next` runs the browser tests alone on
# that release with the newest frontend on PyPI instead of the one its requirements pin.
# `make test-fast` runs the fast tier alone (pytest -m fast: no generated checkpoint, server,
# browser or sampled model; markers set from the fixtures in tests/conftest.py) in about a minute.
# Everything generated lives in git-ignored folders of this checkout and is reused.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKPOINT := .models/checkpoints/delayed-negative-test-sd15.safetensors
SD3_CHECKPOINT := .models/checkpoints/delayed-negative-test-sd3.safetensors
PYTEST_ARGS ?=

# The current ComfyUI release: its source tree, with its own requirements.txt, in .venv-0.33.
CURRENT_TARBALL ?= ../shared/hosts/comfyui-0.33.0.tar.gz
CURRENT_HOME := .hosts/comfyui-0.33.0
CURRENT_VENV := .venv-0.33

# The newest frontend on PyPI: its package unpacked (no dependencies, nothing else of .venv-0.33
# changed) into .frontend-next/<version>/, served through ComfyUI's own --front-end-root
# (COMFYUI_FRONTEND_ROOT, devtools/host/comfyui_server.py).
FRONTEND_NEXT_VERSION ?= 1.58.1
FRONTEND_NEXT := .frontend-next/$(FRONTEND_NEXT_VERSION)
BROWSER_TESTS := tests/test_browser.py tests/test_browser_viewer.py

.PHONY: setup run test test-fast bench setup-current test-current test-frontend-next train study mutation

$(VENV)/.installed: tests/requirements.txt tests/requirements-tools.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The browser tests drive Debian's chromium: Playwright's own browser download does not work here.
$(VENV)/.chromium: | $(VENV)/.installed
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" != 0 ]; then \
		echo "The browser tests need Debian's chromium: run 'sudo apt-get install chromium', then make again." >&2; \
		exit 1; fi
	[ -x /usr/bin/chromium ] || (apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends chromium)
	touch $@

# Seeded: the same bytes every time, so only a change to the generator makes it again.
$(CHECKPOINT): devtools/models/tiny_models.py devtools/models/make_checkpoint.py | $(VENV)/.installed
	$(PY) -m devtools.models.make_checkpoint $@

$(SD3_CHECKPOINT): devtools/models/tiny_models.py devtools/models/make_checkpoint.py | $(VENV)/.installed
	$(PY) -m devtools.models.make_checkpoint $@ sd3

# The toy portraits model (devtools/toy_model/): its trained UNet and VAE are committed; the text
# encoder is the seeded CLIP-L of $(CHECKPOINT), checked by hash before it is combined.
TOY_CHECKPOINT := .models/checkpoints/delayed-negative-toy-portraits.safetensors
TOY_WEIGHTS := $(addprefix devtools/toy_model/weights/,unet.safetensors taesd.safetensors text_encoder.sha256)

$(TOY_CHECKPOINT): $(CHECKPOINT) $(TOY_WEIGHTS) devtools/toy_model/build.py | $(VENV)/.installed
	$(PY) -m devtools.toy_model.build $(CHECKPOINT) $@

setup: $(VENV)/.installed $(CHECKPOINT) $(SD3_CHECKPOINT) $(TOY_CHECKPOINT)
	@$(PY) -m devtools.host.comfyui_home >/dev/null

run: setup
	$(PY) -m devtools.host.comfyui_server

test: setup $(VENV)/.chromium
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The fast tier needs no generated checkpoint and no browser: only .venv and the pinned ComfyUI.
test-fast: $(VENV)/.installed
	@$(PY) -m devtools.host.comfyui_home >/dev/null
	$(PY) -m pytest tests -m fast $(PYTEST_ARGS)

$(CURRENT_HOME)/main.py: $(CURRENT_TARBALL)
	rm -rf $(CURRENT_HOME) .hosts/ComfyUI && mkdir -p .hosts
	tar xzf $(CURRENT_TARBALL) -C .hosts && mv .hosts/ComfyUI $(CURRENT_HOME)
	touch $@

$(CURRENT_VENV)/.installed: $(CURRENT_HOME)/main.py tests/requirements-current-host.txt tests/requirements-tools.txt
	$(PYTHON) -m venv $(CURRENT_VENV)
	$(CURRENT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r $(CURRENT_HOME)/requirements.txt -r tests/requirements-current-host.txt
	touch $@

setup-current: $(CURRENT_VENV)/.installed setup

test-current: setup-current $(VENV)/.chromium
	COMFYUI_PATH=$(CURDIR)/$(CURRENT_HOME) $(CURRENT_VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

$(FRONTEND_NEXT)/.installed: | $(CURRENT_VENV)/.installed
	rm -rf $(FRONTEND_NEXT)
	$(CURRENT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(FRONTEND_NEXT) comfyui-frontend-package==$(FRONTEND_NEXT_VERSION)
	touch $@

# The browser tests only (the example workflows, the Attention Viewer in the classic canvas and Nodes 2.0).
test-frontend-next: setup-current $(VENV)/.chromium $(FRONTEND_NEXT)/.installed
	COMFYUI_PATH=$(CURDIR)/$(CURRENT_HOME) \
	COMFYUI_FRONTEND_ROOT=$(CURDIR)/$(FRONTEND_NEXT)/comfyui_frontend_package/static \
		$(CURRENT_VENV)/bin/python -m pytest $(BROWSER_TESTS) $(PYTEST_ARGS)

bench: setup
	$(PY) -m devtools.bench.bench

# Mutation testing (mutmut) over samplers/, attention/, render/ and nodes/ with the fast tests (-m fast), on
# a copy of the last commit in .mutation/ (the checkout is not touched): devtools/mutation.py,
# figures in docs/mutation.md. Hours for everything on 2 cores; MUTANTS narrows it, e.g.
# make mutation MUTANTS="samplers.negative_window* attention.recording*"
mutation: setup
	nice $(PY) -m devtools.mutation $(MUTANTS)

# Retrain the toy model's weights (CPU, one thread, niced; UNet 34 min + VAE decoder 13 min on 2 busy cores).
train: $(VENV)/.installed $(CHECKPOINT)
	mkdir -p .cache/toy_model
	nice -n 10 $(PY) -m devtools.toy_model.train_unet --log .cache/toy_model/train_unet.log
	nice -n 10 $(PY) -m devtools.toy_model.train_vae --log .cache/toy_model/train_vae.log
	@echo "trained: run 'make setup' to rebuild $(TOY_CHECKPOINT)"

# Removal rate, face kept and change outside the object, by the negative's start, on the toy model
# (through CFG; nag_study: at cfg 1 through NAG, beside CFG).
study: setup
	$(PY) -m devtools.toy_model.study
	$(PY) -m devtools.toy_model.auto_start_study
	$(PY) -m devtools.toy_model.nag_study
	$(PY) -m devtools.toy_model.word_timing

# The GPU run (devtools/gpu_bench/; docs/performance.md, "GPU run"). `make gpu-bundle` fills .gpu-bundle/
# here with what a bare CUDA machine without network lacks (ComfyUI's sources, torchsde, trampoline,
# torchvision for torch 2.11, a stand-in for PyAV), then runs the tiny GPU run on the CPU with only that
# machine's packages and the bundle. `make bench-gpu` runs on that machine (python3 with torch, no .venv):
# full-size SDXL, Wan 2.1 1.3B and Flux dev, under 10 minutes; the results go to BENCH_OUT.
GPU_BUNDLE := .gpu-bundle
GPU_PYTHON ?= python3
BENCH_OUT ?= .artifacts/gpu-bench

.PHONY: gpu-bundle bench-gpu

gpu-bundle: $(VENV)/.installed
	@$(PY) -m devtools.host.comfyui_home >/dev/null
	$(PY) -m devtools.gpu_bench.bundle fill $(GPU_BUNDLE)
	nice $(PY) -m devtools.gpu_bench.bundle check $(GPU_BUNDLE)

bench-gpu:
	$(GPU_PYTHON) -m devtools.gpu_bench.run --bundle $(GPU_BUNDLE) --out $(BENCH_OUT)
