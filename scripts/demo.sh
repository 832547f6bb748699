#!/usr/bin/env bash
# `make demo`: the whole story on the shipped catalog, one gefreg command per step.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/3 lint: validate every record, render it, run hadolint and gefreg's rules"
gefreg lint

step "2/3 render: the annotated Dockerfile of each entry (labels come from the record)"
for entry in catalog/*/service.yaml; do
  name=$(basename "$(dirname "$entry")")
  gefreg render "$name" > ".gefreg/$name.Dockerfile"
  printf '  %-20s -> .gefreg/%s.Dockerfile (%s lines)\n' "$name" "$name" \
    "$(wc -l < ".gefreg/$name.Dockerfile")"
done

step "3/3 summary"
gefreg render waveform-metadata --labels | grep -E '^(eudat|org.gefreg.fingerprint)'
