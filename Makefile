# splice-bench: everything a fresh clone needs. `make demo` and `make test` do all the set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN    ?= runs/smoke
DEVICE ?= auto

.PHONY: install test lint demo perf gpu-check benchmark benchmark-smoke clean help

help:
	@echo "make demo             - set up, then run Splice (smoke preset) on the embedded demo pair"
	@echo "make test             - set up, then lint (ruff) and run the test suite"
	@echo "make lint             - ruff check only"
	@echo "make perf             - seconds/step and peak memory, ours vs the reference way (ViT-S/8 and B/8, 512px and HD;"
	@echo "                        DEVICE=cuda for a GPU, MEMORY_GB=8: the largest image that fits)"
	@echo "make gpu-check        - every CUDA path end to end in minutes, one JSON summary (says so without a GPU)"
	@echo "make benchmark-smoke  - the whole pipeline on the demo set, CPU, random weights allowed, minutes"
	@echo "make benchmark        - the paper protocol on the three data sets (needs weights, data and GPUs)"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, by range: pip takes the local wheels where its configuration points to them
	$(BIN)/python -m pip install -q 'torch>=2.4' 'torchvision>=0.19'
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

test: install lint
	$(BIN)/python -m pytest -q

# the house's lint (pyproject [tool.ruff]): imports sorted, lines <= 120, no unused names
lint: install
	$(BIN)/ruff check .

# --resume: a second `make demo` finds the finished run and says so; a killed one continues
demo: install
	$(BIN)/splice run datasets/demo/giraffe_zebra/structure.png datasets/demo/giraffe_zebra/appearance.png \
		-o runs/demo --preset smoke --device cpu --allow-random-weights --resume
	@echo "demo output: runs/demo/output.png (record: runs/demo/record.json)"

MEMORY_GB ?= 8
perf: install
	$(BIN)/splice perf --device $(DEVICE) --memory-gb $(MEMORY_GB)

# exit 0 only when every check passed; without a CUDA GPU: one line, exit 0
gpu-check: install
	@$(BIN)/splice gpu-check

# The paper protocol. DATA_ROOT holds the images (see datasets/README.md); weights must be cached or given.
DATA_ROOT ?= data
# jobs at once per GPU: auto = as many as fit in its memory (see README "On a GPU box"); 1 = one at a time
JOBS_PER_DEVICE ?= auto
# A failed job does not stop scoring and the report (which shows it); `splice bench status` lists failures.
# bench exits 1 when some jobs failed (score and report the rest; the report lists the failures) and 2 on a
# usage error (no data, a typo: stop there, with its one-line error)
benchmark: install
	$(BIN)/splice bench --methods all --datasets wild-pairs,afhq,mountains --root $(DATA_ROOT) \
		--out runs/paper --preset paper --devices $(DEVICE) --jobs-per-device $(JOBS_PER_DEVICE) || [ $$? -eq 1 ]
	$(BIN)/splice score --out runs/paper --metrics iou,vit
	$(BIN)/splice report --out runs/paper

benchmark-smoke: install
	$(BIN)/splice bench --methods smoke --datasets demo --root datasets --out $(RUN) --preset smoke \
		--devices cpu --allow-random-weights || [ $$? -eq 1 ]
	$(BIN)/splice score --out $(RUN) --metrics iou,vit --allow-random-weights --detector-size 320
	$(BIN)/splice report --out $(RUN)
	@echo "report: $(RUN)/report/index.html"

clean:
	rm -rf $(VENV) build *.egg-info
