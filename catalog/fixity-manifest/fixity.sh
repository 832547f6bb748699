# Write a BagIt-style fixity manifest of a data collection: one "sha256  data/PATH" line per
# file, sorted bytewise, and the Payload-Oxum (total bytes.file count). Runs on busybox alone.
set -eu
in=${1:-/data/collection}
out=${2:-/data/manifest}
cd "$in"
find . -type f | LC_ALL=C sort | sed 's|^\./||' > /tmp/files
: > "$out/manifest-sha256.txt"
bytes=0
count=0
while IFS= read -r path; do
  sum=$(sha256sum "$path" | cut -d ' ' -f 1)
  printf '%s  data/%s\n' "$sum" "$path" >> "$out/manifest-sha256.txt"
  size=$(stat -c %s "$path")
  bytes=$((bytes + size))
  count=$((count + 1))
done < /tmp/files
printf 'Payload-Oxum: %s.%s\n' "$bytes" "$count" > "$out/bag-info.txt"
