#!/usr/bin/env bash
# `make demo`: the whole story on the shipped catalog, one gefreg command per step.
# Everything the demo creates lives in .gefreg/demo (a working copy of the catalog, whose
# release ledgers the demo writes, the registry's storage, gefreg's state and the runs),
# so your checkout stays clean and `rm -rf .gefreg` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
demo="$PWD/.gefreg/demo"
port="${GEFREG_DEMO_PORT:-5000}"
export GEFREG_CATALOG="$demo/catalog" GEFREG_STATE="$demo/state"
export GEFREG_REGISTRY="${GEFREG_REGISTRY:-127.0.0.1:$port}"
start=$(date +%s)
step() { printf '\n\033[1m== [%ss] %s\033[0m\n' "$(( $(date +%s) - start ))" "$*"; }

step "1/10 the catalog: a working copy in .gefreg/demo/catalog"
# The demo publishes immutable versions into its own registry. When the catalog or gefreg
# itself changed since the last demo, those versions would (rightly) refuse the new images:
# start the demo over instead.
stamp=$(find catalog templates gefreg -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z |
        xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -d "$demo" ] && [ "$(cat "$demo/stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "the catalog or gefreg changed since the last demo: starting the demo over"
  gefreg registry stop --data "$demo/registry" >/dev/null 2>&1 || true
  rm -rf "$demo"
fi
mkdir -p "$demo/catalog"
echo "$stamp" > "$demo/stamp"
cp -a catalog/. "$demo/catalog/"     # keeps the demo's own ledgers and lock from earlier runs
entries=$(cd "$demo/catalog" && ls -d */service.yaml | cut -d/ -f1 | xargs)
echo "entries: $entries"

step "2/10 the embedded registry on 127.0.0.1:$port (storage in .gefreg/demo/registry)"
gefreg registry serve --port "$port" --data "$demo/registry"

step "3/10 curated bases: mmdebstrap from the Debian archive, same record -> same digest"
gefreg base build --all

step "4/10 lint: records, rendered Dockerfiles, hadolint and gefreg's rules"
gefreg lint

step "5/10 build: only declared files in the context; unchanged entries are cache hits"
gefreg build $entries

step "6/10 scan: Trivy (secrets, misconfigurations, vulnerabilities when a DB exists) + policy"
for entry in $entries; do gefreg scan "$entry" --format table; done

step "7/10 test: each entry's golden tests through the hardened runner"
for entry in $entries; do gefreg test "$entry"; done

step "8/10 publish: immutable versions, pushed by digest, recorded in the release ledger"
gefreg publish $entries
gefreg verify

step "9/10 run waveform-metadata@1.0.0 on its sample archive, pinned by digest, and record it"
run="$demo/runs/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$run/output"
gefreg run waveform-metadata@1.0.0 \
  --input "$demo/catalog/waveform-metadata/tests/archive" \
  --output "$run/output" --record "$run/run.json"

step "10/10 reproduce the run from its record and compare the outputs"
gefreg reproduce "$run/run.json" --output "$run/rerun" --json > "$run/reproduce.json"

step "summary"
echo "published (gefreg list):"
gefreg list | sed 's/^/  /'
python3 scripts/demo_summary.py "$demo" "$run" "$GEFREG_REGISTRY"
printf '\ndemo finished in %ss\n' "$(( $(date +%s) - start ))"
