#!/usr/bin/env bash
# Vendor Chart.js (MIT, https://www.chartjs.org) into plugins/usage/static/vendor/ from the npm registry.
# Run from anywhere: plugins/usage/scripts/vendor_chartjs.sh [version]. It downloads the package tarball with
# `npm pack` into a temp dir (no node_modules anywhere in the repo), checks its integrity against the registry's
# sha512, and copies only dist/chart.umd.min.js and the licence. Commit the result; the portal needs no Node at run time.
set -euo pipefail
VERSION="${1:-4.6.1}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$HERE/static/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
npm pack --silent "chart.js@${VERSION}" >/dev/null
TARBALL="chart.js-${VERSION}.tgz"
EXPECTED="$(npm view "chart.js@${VERSION}" dist.integrity)"
ACTUAL="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
if [ "$EXPECTED" != "$ACTUAL" ]; then echo "integrity mismatch: $EXPECTED != $ACTUAL" >&2; exit 1; fi
tar -xzf "$TARBALL"
mkdir -p "$OUT"
cp package/dist/chart.umd.min.js "$OUT/chart.umd.min.js"
cp package/LICENSE.md "$OUT/chart.js.LICENSE.md"
echo "chart.js ${VERSION} ${EXPECTED}" > "$OUT/chart.js.VERSION"
echo "vendored chart.js ${VERSION} into $OUT"
