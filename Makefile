# The same targets run for a person and in CI (.ci/run, .github/workflows): workflows only call these.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export PYTHONUNBUFFERED := 1
# the Label Studio server's own venv (built by `make labelstudio-env`), for `mlops-nb labelstudio serve` and tests
LS_VENV = $$(.ci/env.sh labelstudio | tail -1)
# zizmor + actionlint + ruff in their own hash-pinned venv (`make audit-env`), for the workflow audits and `make lint`
AUDIT_VENV = $$(.ci/env.sh audit | tail -1)

.PHONY: image image-test image-check image-push image-champion deps chromium install labelstudio-env audit-env demo demo-multi-label pipeline promote suggest review pr-model pr-commit pr-comment check-lock refresh gate test check-sync lint nbtest wheel-test export readme clean-nbs update bench ddp-smoke

install: $(VENV)/.installed
$(VENV)/.installed: settings.ini constraints.txt setup.py .ci/env.sh
	.ci/env.sh dev
	$(BIN)/mlops-nb hooks
	touch $@

labelstudio-env:
	.ci/env.sh labelstudio >/dev/null

audit-env:
	.ci/env.sh audit >/dev/null

## the main job: local Label Studio seeded with digits -> the whole pipeline -> report
demo: install labelstudio-env
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) $(BIN)/mlops-nb demo

## the same demo for a multi-label project (digits tagged even / has-a-loop / over-four), in demo-multi-label/
demo-multi-label: install labelstudio-env
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) $(BIN)/mlops-nb demo --multi-label

## the pipeline against the configured Label Studio (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY from the environment)
pipeline: install
	$(BIN)/dvc pull --allow-missing || echo "dvc pull: nothing to pull yet"
	$(BIN)/dvc repro
	$(BIN)/mlops-nb report

## the decision to merge: exit 3 when the compare verdict (reports/compare.json) says a gated metric got worse
gate: install
	$(BIN)/mlops-nb gate

## new Label Studio data -> dvc repro (export + dataset) -> dvc push -> branch data-refresh + one pull request
## (default --if-changed: one cheap fingerprint check when nothing changed; by hand: REFRESH_ARGS='--project digits')
REFRESH_ARGS ?= --if-changed
refresh: install
	$(BIN)/mlops-nb refresh $(REFRESH_ARGS)

## on main: measure the model at this very commit (a clean tree), then mark those results as the champion
promote: install
	$(BIN)/dvc repro --single-item --force evaluate
	$(BIN)/mlops-nb promote --section compare

## the champion's predictions -> Label Studio pre-annotations on every unannotated task of the training projects, and
## the saved view "Most uncertain first" (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY from the environment)
suggest: install
	$(BIN)/mlops-nb suggest

## the label audit's flags (metrics/audit-<project>.json) -> Label Studio: one suggestion per flagged task, scored by its
## label quality, and the saved view "Needs a second look"; annotations are never changed
review: install
	$(BIN)/mlops-nb review

## the model job of a labelled pull request (.github/workflows/model.yml): data and cache from the remote, the
## pipeline, results back to the remote. Idempotent: on its own output it reruns nothing and pushes nothing new.
pr-model: install
	$(BIN)/dvc pull --allow-missing || echo "dvc pull: nothing to pull yet"
	$(BIN)/dvc repro
	$(BIN)/dvc push
	$(BIN)/mlops-nb report

## commit dvc.lock, metrics/, plots/, dvclive/ to the pull request's branch (GITHUB_TOKEN), then dispatch CI on it
pr-commit: install
	$(BIN)/mlops-nb pr-commit

## create or update the one report comment on the pull request (GitHub REST API, no downloads at run time)
pr-comment: install
	$(BIN)/mlops-nb pr-comment

## each stage's code deps in dvc.yaml and envs/: its notebook, the mlops_nb modules and pinned packages its run imports
deps: install
	$(BIN)/mlops-nb deps --write

## fail, naming the stages, when dvc.lock is stale for git-tracked dependencies, params or tracked results
check-lock: install
	$(BIN)/mlops-nb check-lock



## every test: notebooks clean and in sync, notebook tests, pytest on the installed wheel, then the container image
test: install labelstudio-env audit-env chromium check-sync check-lock nbtest wheel-test image-check

chromium:
	tests/install_chromium.sh

## the container image (Containerfile): podman on a Debian base made here (or CONTAINER=docker, BASE=...), with the
## pinned deps and this package's built wheel; IMAGE names it (default localhost/mlops-nb:dev)
image:
	.ci/image.sh build

## tests/test_image.py against the built image: --help, the sample pipeline on a mounted clone as a non-root host user,
## a stage against Label Studio on the host, no root / .git / token / test data inside
image-test: install labelstudio-env
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) .ci/image.sh test

## `make test`'s last step: build and test the image where podman runs (.ci/run installs it); IMAGE_TEST=skip skips
## it (ci.yml: image.yml builds and tests the image on GitHub)
image-check:
	@if [ "$${IMAGE_TEST:-}" = skip ]; then echo "[image] IMAGE_TEST=skip: not built here"; \
	elif command -v podman >/dev/null; then $(MAKE) --no-print-directory image image-test; \
	else echo "[image] skipped: no podman here (Debian: apt-get install podman runc mmdebstrap)"; fi

## push the tested image to IMAGE_REPO (ghcr.io/<owner>/<repo>) as sha-<commit> and, on main, main
image-push:
	.ci/image.sh push

## after `make promote`: this commit's image also gets the champion's model version as a tag
image-champion:
	.ci/image.sh tag-champion

lint:  ## ruff at 120 columns on the package (config in pyproject.toml)
	.ci/lint.sh

check-sync:
	.ci/check_sync.sh
	$(BIN)/mlops-nb deps --check
	.ci/lint.sh
	.ci/readme.sh --check

nbtest:
	$(BIN)/nbdev_test

wheel-test:
	MLOPS_LABELSTUDIO_VENV=$(LS_VENV) MLOPS_AUDIT_VENV=$(AUDIT_VENV) .ci/test_wheel.sh

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

## distributed training smoke test: 2 CPU processes (torchrun + fastai/accelerate, gloo) vs 1 on small digits;
## prints the world size, images/s and the accuracy of each
ddp-smoke: install
	$(BIN)/python bench/bench_scale.py ddp-smoke
