#!/usr/bin/env bash
# Vendors the dashboard's browser libraries into ../static/vendor.
#
# Run it after changing the chart.js pin in package.json (then commit
# package.json, package-lock.json and everything under ../static/vendor).
# `go run` / `go test` never need npm: the vendored copy is committed and
# embedded into the binary by //go:embed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

npm ci --ignore-scripts --no-audit --no-fund

out=../static/vendor
mkdir -p "$out"
rm -f "$out"/chart.umd*.js

# chart.js 4.x ships dist/chart.umd.min.js (>= 4.5) or dist/chart.umd.js; take whichever exists.
src=
for f in node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.js; do
	if [[ -f $f ]]; then src=$f; break; fi
done
if [[ -z $src ]]; then
	echo "vendor.sh: no chart.umd(.min).js in node_modules/chart.js/dist" >&2
	exit 1
fi
# Served under one stable name, whichever file the installed version has.
cp "$src" "$out/chart.umd.min.js"

version=$(node -p 'require("./node_modules/chart.js/package.json").version')
color_version=$(node -p 'require("./node_modules/@kurkle/color/package.json").version')
cp node_modules/chart.js/LICENSE.md "$out/chart.js.LICENSE.md"
# The UMD bundle inlines @kurkle/color (MIT), so its licence travels with it.
cp node_modules/@kurkle/color/LICENSE.md "$out/kurkle-color.LICENSE.md" 2>/dev/null ||
	cp node_modules/@kurkle/color/LICENSE "$out/kurkle-color.LICENSE.md"

cat >"$out/VERSIONS" <<VERSIONS
chart.js $version (MIT, chart.js.LICENSE.md) from $(basename "$src") -> chart.umd.min.js
@kurkle/color $color_version (MIT, kurkle-color.LICENSE.md), bundled inside chart.js's UMD build
VERSIONS
echo "vendored chart.js $version into $out"
