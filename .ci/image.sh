#!/usr/bin/env bash
# The container image (Containerfile): build it, test it, push it. Called by `make image`, `make image-test`,
# `make image-push` and `make image-champion`; .github/workflows/image.yml calls those targets.
#
#   CONTAINER   podman (default when installed) or docker
#   IMAGE       the image's name (default localhost/mlops-nb:dev)
#   BASE        the base image; with podman and no BASE, a Debian bookworm base made here by mmdebstrap from Debian's
#               packages and this machine's CPython 3.11 (no image registry needed), imported once per Python version
#   BUILD_ARGS  more build arguments, e.g. "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu"
#   IMAGE_REPO  where `push` and `tag-champion` push (ghcr.io/<owner>/<repo>); REGISTRY_USER and REGISTRY_TOKEN from
#               the environment log in first (the token goes through stdin); REGISTRY_TLS_VERIFY=false for a test one
#   TAG_SUFFIX  appended to every pushed tag: image.yml pushes the CPU variant as sha-<commit>-cpu, main-cpu
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[image] $*" >&2; }
CONTAINER=${CONTAINER:-$(command -v podman >/dev/null && echo podman || echo docker)}
IMAGE=${IMAGE:-localhost/mlops-nb:dev}
LOCAL_BASE=localhost/mlops-nb-base:bookworm

# podman on this kind of machine (cgroup v1, rootful, no systemd): cgroupfs, Debian's runc, ulimits below the host's
engine() {
  if [ "$CONTAINER" = podman ]; then podman --cgroup-manager cgroupfs --runtime runc "$@"; else docker "$@"; fi
}
ULIMITS=(--ulimit nofile=8192:8192 --ulimit nproc=8192:8192)
# Docker's image format, as Docker builds it: OCI's has no SHELL (the Containerfile's pipefail)
FORMAT=(); [ "$CONTAINER" = podman ] && FORMAT=(--format docker)

local_base() {  # Debian bookworm from Debian's packages, with this machine's CPython 3.11 in /usr/local (as python:3.11-slim
  # has it): bookworm's own python3 is 3.11.2, older than the pins allow (soupsieve 4.1.3 requires >= 3.11.5)
  local prefix version tmp
  prefix=$(python3 -c 'import sys; print(sys.base_prefix)'); version=$(python3 -c 'import platform; print(platform.python_version())')
  local tag=$LOCAL_BASE-py$version
  if engine image exists "$tag" 2>/dev/null; then echo "$tag"; return; fi
  case $version in 3.11.*) ;; *) say "python3 here is $version: a local base needs CPython 3.11 (or set BASE)"; exit 2;; esac
  tmp=$(mktemp -d)
  say "making $tag: mmdebstrap bookworm + CPython $version from $prefix (once per machine, about 40 s)"
  tar -C "$prefix" -cf "$tmp/python.tar" --exclude='__pycache__' --exclude='lib/python3.11/site-packages/*' \
    --exclude='lib/python3.11/test' --exclude='lib/python3.11/idlelib' --exclude='lib/python3.11/tkinter' \
    --exclude='lib/python3.11/lib-dynload/_tkinter*' bin/python3.11 bin/python3 bin/python lib/libpython3.11.so.1.0 \
    lib/python3.11
  mmdebstrap --quiet --variant=apt --include=ca-certificates,libssl3,libsqlite3-0,libffi8,zlib1g,libbz2-1.0,liblzma5,\
libreadline8,libncursesw6,libuuid1,libexpat1,libnsl2,libtirpc3 \
    --customize-hook="tar-in $tmp/python.tar /usr/local" --customize-hook='chroot "$1" ldconfig /usr/local/lib' \
    --customize-hook='chroot "$1" python3 -m ensurepip --version' bookworm "$tmp/base.tar" >&2
  engine import --quiet "$tmp/base.tar" "$tag" >/dev/null
  rm -rf "$tmp"; echo "$tag"
}

pip_sources() {  # where this machine's pip looks: passed on as build args; local folders mounted read-only
  local key var value
  for key in index-url extra-index-url find-links; do
    var=PIP_$(echo "$key" | tr a-z- A-Z_)
    value=${!var:-$(pip config get "global.$key" 2>/dev/null || true)}
    [ -n "$value" ] || continue
    echo "--build-arg=$var=$value"
    for src in $value; do
      src=${src#file://}; src=${src%/simple}
      [ -d "$src" ] && echo "--volume=$src:$src:ro"
    done
  done | sort -u
  # a registry behind a TLS-inspecting proxy: the host's CA bundle, read-only, for pip only
  local cert=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
  [ -f "$cert" ] && echo "--volume=$cert:/run/pip-ca.crt:ro" && echo "--build-arg=PIP_CERT=/run/pip-ca.crt"
  true
}

build() {
  local base=${BASE:-} args=()
  [ -n "$base" ] || { [ "$CONTAINER" = podman ] && base=$(local_base); } || true
  [ -n "$base" ] && args+=(--build-arg "BASE=$base")
  for a in ${BUILD_ARGS:-}; do args+=(--build-arg "$a"); done
  mapfile -t sources < <(pip_sources)
  say "building $IMAGE${base:+ on $base}"
  engine build --network host "${ULIMITS[@]}" "${FORMAT[@]}" --file Containerfile --tag "$IMAGE" "${args[@]}" "${sources[@]}" \
    --build-arg "VERSION=$(sed -n 's/^version *= *//p' settings.ini)" \
    --build-arg "REVISION=$(git rev-parse HEAD)" \
    --build-arg "SOURCE=${SOURCE:-$(sed -n 's/^git_url *= *//p' settings.ini)}" .
  engine image prune --force >/dev/null 2>&1 || true   # earlier builds' untagged images (the layer cache stays)
  say "$IMAGE: $(engine image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) ($(engine image inspect --format '{{.Size}}' "$IMAGE") bytes)"
}

run_tests() {  # tests/test_image.py against the built image, from the dev env (it starts Label Studio on the host)
  local engine=docker; [ "$CONTAINER" = podman ] && engine="podman --cgroup-manager cgroupfs --runtime runc"
  MLOPS_IMAGE=$IMAGE MLOPS_CONTAINER=$engine MLOPS_CONTAINER_RUN_ARGS="${ULIMITS[*]}" \
    .venv/bin/python -m pytest tests/test_image.py -p no:cacheprovider --rootdir tests "$@"
}

registry_login() {  # REGISTRY_TOKEN (and REGISTRY_USER) from the environment only, through stdin, never argv
  [ -n "${REGISTRY_TOKEN:-}" ] || return 0
  printf '%s' "$REGISTRY_TOKEN" | engine login "${TLS[@]}" --username "${REGISTRY_USER:?REGISTRY_USER}" \
    --password-stdin "${IMAGE_REPO%%/*}" >/dev/null
}

repo() {  # IMAGE_REPO, e.g. ghcr.io/<owner>/<repo>: registries want it lower-case
  [ -n "${IMAGE_REPO:-}" ] || { say "IMAGE_REPO is not set (e.g. ghcr.io/<owner>/<repo>)"; exit 2; }
  IMAGE_REPO=$(echo "$IMAGE_REPO" | tr A-Z a-z)
}
TLS=(); [ "${REGISTRY_TLS_VERIFY:-true}" = false ] && [ "$CONTAINER" = podman ] && TLS=(--tls-verify=false)

push() {  # the tested image as sha-<short commit> and, on main, as main
  repo; registry_login
  local tags=("sha-$(git rev-parse --short=7 HEAD)${TAG_SUFFIX:-}")
  [ "${GITHUB_REF_NAME:-$(git rev-parse --abbrev-ref HEAD)}" = main ] && tags+=("main${TAG_SUFFIX:-}")
  for t in "${tags[@]}"; do
    engine tag "$IMAGE" "$IMAGE_REPO:$t"; engine push --quiet "${TLS[@]}" "$IMAGE_REPO:$t" >/dev/null
    say "pushed $IMAGE_REPO:$t"
  done
}

champion_version() {  # the model version of the benchmark results at this commit (mlops_nb.suggest.model_version)
  python3 - "${METRICS:-metrics/benchmark.json}" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['model']
print(f"{m['arch']}-{m['sha256'][:12]}")
PY
}

tag_champion() {  # after `make promote` on main: the image of this commit also gets the champion's model version
  repo; registry_login
  local src="$IMAGE_REPO:sha-$(git rev-parse --short=7 HEAD)${TAG_SUFFIX:-}" dst
  dst="$IMAGE_REPO:$(champion_version)${TAG_SUFFIX:-}"
  local waited=0  # image.yml builds the commit's image while the benchmark runs: wait for it (IMAGE_WAIT seconds)
  until engine pull --quiet "${TLS[@]}" "$src" >/dev/null 2>&1; do
    [ "$waited" -lt "${IMAGE_WAIT:-3600}" ] || { say "$src did not appear in ${IMAGE_WAIT:-3600} s"; exit 1; }
    sleep 30; waited=$((waited + 30))
  done
  engine tag "$src" "$dst"; engine push --quiet "${TLS[@]}" "$dst" >/dev/null
  say "tagged $src as $dst"
}

case ${1:-} in
  build) build;;
  test) shift; run_tests "$@";;
  push) push;;
  tag-champion) tag_champion;;
  *) echo "usage: $0 build|test|push|tag-champion" >&2; exit 2;;
esac
