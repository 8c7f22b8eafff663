#!/usr/bin/env bash
# Screenshot of `guideline render` (HTML) in Debian's headless Chromium, fully offline.
#
#   scripts/render-screenshot.sh [OUT.png] [WIDTH,HEIGHT] [GUIDELINE_DIR]
#
# Defaults: render.png, 1280,4000, the bundled guideline. Needs chromium
# (Debian/Ubuntu: apt-get install -y chromium). PYTHON / CHROMIUM override the programs used;
# KEEP_HTML=FILE also keeps the rendered HTML.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-render.png}")"
size="${2:-1280,4000}"
dir="${3:-$root/guidelines/neutropenia}"
if [[ -n "${PYTHON:-}" ]]; then python="$PYTHON"
elif [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"
else python="python3"; fi
chromium="${CHROMIUM:-$(command -v chromium || true)}"
if [[ -z "$chromium" ]]; then
    echo "chromium not found: install it with 'apt-get install -y chromium' (or set CHROMIUM=...)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && "$python" -m engine render "$dir" -o "$tmp/guideline.html")
if [[ -n "${KEEP_HTML:-}" ]]; then cp "$tmp/guideline.html" "$KEEP_HTML"; fi
rm -f "$out"

# A fresh profile, no network at all (every host resolves to nothing): the page must stand alone.
if ! "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
        --host-resolver-rules="MAP * ~NOTFOUND" --hide-scrollbars \
        --user-data-dir="$tmp/profile" --window-size="$size" --screenshot="$out" \
        "file://$tmp/guideline.html" >"$tmp/chromium.log" 2>&1 || [[ ! -s "$out" ]]; then
    cat "$tmp/chromium.log" >&2
    echo "chromium did not write $out" >&2
    exit 1
fi
echo "$out ($size)"
