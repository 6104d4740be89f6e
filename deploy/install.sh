#!/bin/sh
# Install the bot into a virtual environment, in two steps so a container build caches the slow
# dependency layer until pyproject.toml changes. The Dockerfile and tests/test_deploy_install.py
# both run this script, so the image and the test cannot drift apart.
#
#   deploy/install.sh dependencies VENV   only pyproject.toml needs to be in the current directory
#   deploy/install.sh project VENV        the source (bot/, graph/) as well; adds no dependencies
set -eu

step="${1:?usage: install.sh dependencies|project VENV}"
venv="${2:?usage: install.sh dependencies|project VENV}"
python="$venv/bin/python"

case "$step" in
  dependencies)
    requirements="$(mktemp)"
    # The runtime dependencies exactly as pyproject.toml declares them (no dev extras).
    "$python" -c 'import sys, tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >"$requirements"
    "$python" -m pip install --disable-pip-version-check --no-input --quiet -r "$requirements"
    rm -f "$requirements"
    ;;
  project)
    # --no-deps: everything needed came from the dependencies step; a missing one fails here.
    "$python" -m pip install --disable-pip-version-check --no-input --quiet --no-deps .
    "$python" -m pip check
    ;;
  *)
    echo "unknown step: $step" >&2
    exit 2
    ;;
esac
