# The same targets run for a person and in CI (.ci/run, .github/workflows).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: install labelstudio-env demo test check-sync nbtest wheel-test export clean-nbs bench

install: $(BIN)/mlops-nb
$(BIN)/mlops-nb: settings.ini constraints.txt setup.py
	.ci/env.sh dev

labelstudio-env:
	.ci/env.sh labelstudio >/dev/null

## the main job: local Label Studio seeded with digits -> the whole pipeline -> report
demo: install labelstudio-env
	$(BIN)/mlops-nb demo

## every test: notebooks clean and in sync, notebook tests, then pytest on the installed wheel
test: install labelstudio-env check-sync nbtest wheel-test

check-sync:
	.ci/check_sync.sh

nbtest:
	$(BIN)/nbdev_test --do_print

wheel-test:
	.ci/test_wheel.sh

export:
	$(BIN)/nbdev_export

clean-nbs:
	$(BIN)/nbdev_clean

bench: install labelstudio-env
	$(BIN)/python bench/run.py
