#!/bin/sh
# Summarise every netCDF file under the input folder with NCO: metadata as JSON
# (ncks --json -m) and the mean, minimum and maximum of each variable (ncwa).
# Files that are not netCDF are listed in errors.txt; they do not stop the run.
set -eu
in=${1:-/data/input}
out=${2:-/data/output}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: > "$out/errors.txt"
count=0
find "$in" -type f -name '*.nc' | LC_ALL=C sort > "$work/files"
while IFS= read -r file; do
  rel=${file#"$in"/}
  name=$(printf '%s' "$rel" | tr '/' '_')
  if ! ncks --json -m "$file" > "$work/meta.json" 2> "$work/err"; then
    printf '%s: not a readable netCDF file: %s\n' "$rel" "$(head -n 1 "$work/err")" >> "$out/errors.txt"
    continue
  fi
  mv "$work/meta.json" "$out/$name.metadata.json"
  for op in avg min max; do
    ncwa -O -y "$op" "$file" "$work/$op.nc" 2> "$work/err" || {
      printf '%s: %s failed: %s\n' "$rel" "$op" "$(head -n 1 "$work/err")" >> "$out/errors.txt"
      continue
    }
    ncks --json -H "$work/$op.nc" > "$out/$name.$op.json"
  done
  count=$((count + 1))
done < "$work/files"
printf '%s netCDF files summarised\n' "$count" > "$out/summary.txt"
