# The same targets run for a person and in CI (.ci/run, .github/workflows): workflows only call these.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export PYTHONUNBUFFERED := 1
# the Label Studio server's own venv (built by `make labelstudio-env`), for `mlops-nb labelstudio serve` and tests
LS_VENV = $$(.ci/env.sh labelstudio | tail -1)

.PHONY: chromium install labelstudio-env demo pipeline refresh promote pr-comment test check-sync nbtest wheel-test export readme clean-nbs update bench

install: $(VENV)/.installed
$(VENV)/.installed: settings.ini constraints.txt setup.py .ci/env.sh
	.ci/env.sh dev
	touch $@

labelstudio-env:
	.ci/env.sh labelstudio >/dev/null

## the main job: local Label Studio seeded with digits -> the whole pipeline -> report
demo: install labelstudio-env
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) $(BIN)/mlops-nb demo

## the pipeline against the configured Label Studio (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY from the environment)
pipeline: install
	$(BIN)/dvc pull --allow-missing || echo "dvc pull: nothing to pull yet"
	$(BIN)/dvc repro
	$(BIN)/mlops-nb report

## new Label Studio data -> dvc repro (export + dataset) -> dvc push -> branch data-refresh + one pull request
## (the scheduled fallback: make refresh REFRESH_ARGS=--if-changed; a dispatch: REFRESH_ARGS='--project digits')
refresh: install
	$(BIN)/mlops-nb refresh $(REFRESH_ARGS)

## on main: measure the model at this very commit (a clean tree), then mark those results as the champion
promote: install
	$(BIN)/dvc repro --single-item --force evaluate
	$(BIN)/mlops-nb promote

pr-comment:
	npx --yes @dvcorg/cml@0.20 comment update --target=pr --publish reports/compare.md

## every test: notebooks clean and in sync, notebook tests, then pytest on the installed wheel
test: install labelstudio-env chromium check-sync nbtest wheel-test

chromium:
	tests/install_chromium.sh

check-sync:
	.ci/check_sync.sh
	.ci/readme.sh --check

nbtest:
	$(BIN)/nbdev_test

wheel-test:
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) .ci/test_wheel.sh

export:
	$(BIN)/nbdev_export
	.ci/readme.sh

readme:
	.ci/readme.sh

## store every notebook as JupyterLab saves it (outputs, counts and kernel metadata dropped; tags kept)
clean-nbs: install
	$(BIN)/mlops-nb clean-nbs

## sync edits of mlops_nb/*.py back into their notebooks (only the notebooks whose module changed)
update: install
	$(BIN)/nbdev_update
	$(BIN)/mlops-nb clean-nbs

bench: install labelstudio-env
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) $(BIN)/python bench/run.py
