#!/usr/bin/env bash
# Build the wheel, install it (not editable) in a fresh venv, run every command from outside the repository.
#
#   scripts/wheel-smoke.sh
#
# Proves that an installed package finds its bundled guideline and schemas and reads nothing from
# the checkout. Prints one line per check and "N passed, M failed"; exits 1 on any failure, after
# the output of each failing command. No stdin is read. Needs network to the package index (the
# wheel's dependencies, and setuptools for the isolated build).
#   PYTHON=python3.12   the interpreter of the fresh venv (default python3; 3.11 or 3.12)
#   KEEP=1              keep the temporary folder (its path is printed) to look at the outputs
#   GUIDELINE_FLAG=positional|flag|auto  how the commands other than evaluate and serve name
#                       a guideline folder: positional DIR only, also --guideline DIR, or (default)
#                       --guideline DIR too where the command's --help lists it
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
flag_mode="${GUIDELINE_FLAG:-auto}"
started=$SECONDS
tmp="$(mktemp -d "${TMPDIR:-/tmp}/wheel-smoke.XXXXXX")"
server_pid=""

cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  if [[ -n "${KEEP:-}" ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

case "$tmp/" in "$root"/*) echo "wheel-smoke: the temporary folder $tmp is inside the repository" >&2; exit 2 ;; esac
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV  # nothing may reach the checkout but the wheel itself

step() {  # step NAME CMD...: a setup step; its output is shown only when it fails
  if ! "${@:2}" >"$tmp/step.log" 2>&1; then
    grep -v '^WARNING: Location' "$tmp/step.log" >&2 || true
    echo "wheel-smoke: $1 failed" >&2
    exit 1
  fi
}

# --- build and install -------------------------------------------------------------------------
# The wheel is built from a copy of the files git knows (tracked, or new and not ignored): a stale
# build/ folder in the checkout cannot leak into it, and the checkout gets no build/ or egg-info.
copy_sources() {
  mkdir -p "$tmp/src"
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
      | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
      | xargs -0 cp --parents -t "$tmp/src")
  else
    tar -C "$root" --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' -cf - . \
      | tar -C "$tmp/src" -xf -
  fi
}
step "copying the sources" copy_sources
step "creating the venv" "$python" -m venv "$tmp/venv"
venv="$tmp/venv"
step "building the wheel" "$venv/bin/python" -m pip wheel -q --no-deps "$tmp/src" -w "$tmp/dist"
wheels=("$tmp/dist"/*.whl)
step "installing ${wheels[0]##*/}" "$venv/bin/python" -m pip install -q "${wheels[0]}"
echo "built and installed ${wheels[0]##*/} in $((SECONDS - started)) s"

# --- what the commands read: copies, in a folder outside the repository -------------------------
work="$tmp/work"
mkdir -p "$work"
cd "$work"
cp "$root/examples/febrile-neutropenia-low-risk.json" patient.json
cp "$root/examples/fhir/febrile-neutropenia-low-risk.json" bundle.json
cp "$root/examples/fhir/febrile-neutropenia-low-risk-extra.json" extra.json
cp "$root/examples/cds/patient-view-febrile-neutropenia-low-risk.json" hook.json
echo '{"anc": 0.3, "temprature": 38.6}' > typo.json
cp -r "$root/guidelines/neutropenia" old
cp -r old new          # the febrile-neutropenia ANC threshold raised, version bumped as diff requires
                       # (and unbumped: the same without the bump)
cp -r old approved     # reviewed and approved, so that `release` can record it
cp -r old broken       # a rule with an unknown fact
edit() {  # edit FILE OLD NEW: replace text that must occur exactly once
  "$venv/bin/python" - "$@" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path, encoding="utf-8").read()
if text.count(old) != 1:
    sys.exit(f"{path}: {old!r} occurs {text.count(old)} times, not once")
open(path, "w", encoding="utf-8").write(text.replace(old, new))
EOF
}
fn_anc=$'- any:\n            - {fact: anc, lt: '  # the ANC threshold of rule febrile-neutropenia
step "editing new" edit new/rules/febrile-neutropenia.yaml "${fn_anc}0.5," "${fn_anc}1.0,"
step "editing new" edit new/guideline.yaml "version: 1.0.0" "version: 1.1.0"
cp -r new unbumped
step "editing unbumped" edit unbumped/guideline.yaml "version: 1.1.0" "version: 1.0.0"
step "editing approved" edit approved/guideline.yaml "status: draft" "status: approved"
step "editing approved" edit approved/guideline.yaml "reviewers: []" \
  $'reviewers:\n  - name: Smoke Test Reviewer\n    role: haematologist'
# history/: a git repository whose last commit is new/ over old/ (for diff --rev).
in_history() { git -C history -c user.name=smoke -c user.email=smoke@localhost "$@"; }
commit_history() {
  mkdir -p history && rm -rf history/neutropenia && cp -r "$1" history/neutropenia
  in_history init -q && in_history add -A && in_history commit -qm "$1"
}
step "committing old to history" commit_history old
step "committing new to history" commit_history new
step "editing broken" edit broken/rules/febrile-neutropenia.yaml "${fn_anc}0.5," "${fn_anc/anc/ancc}0.5,"

# A client for the server: loopback only, no proxy, bounded. Kept out of the working folder, where
# `python -m engine` would import it (sys.path[0] is the working folder there).
client="$tmp/cds_client.py"
cat > "$client" <<'EOF'
"""cds_client.py URL [BODY.json]: GET (or POST the body), print the response; exit 1 on any error."""
import sys
import urllib.request

url, body = sys.argv[1], (open(sys.argv[2], "rb").read() if len(sys.argv) > 2 else None)
assert url.startswith("http://127.0.0.1:"), url
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
with opener.open(request, timeout=20) as response:
    sys.stdout.write(response.read().decode("utf-8"))
EOF

# --- checks ------------------------------------------------------------------------------------
passed=0
failed=0
check() {  # check NAME EXIT PATTERN CMD...: exit code, an extended regex (or '') in stdout or stderr, no traceback
  local name="$1" want="$2" pattern="$3" rc=0 t0="${EPOCHREALTIME//[.,]/}"
  shift 3
  "$@" <"${IN:-/dev/null}" >"$tmp/out" 2>"$tmp/err" || rc=$?
  local why=""
  if [[ "$rc" != "$want" ]]; then why="exit $rc, expected $want"
  elif grep -q 'Traceback (most recent call last)' "$tmp/err"; then why="a traceback on stderr"
  # grep reads the files itself: `cat | grep -q` dies of SIGPIPE under pipefail once the output
  # outgrows the pipe buffer and grep stops at its first match.
  elif [[ -n "$pattern" ]] && ! grep -Eq -- "$pattern" "$tmp/out" "$tmp/err"; then why="no line matches /$pattern/"
  fi
  if [[ -z "$why" ]]; then
    passed=$((passed + 1))
    local tenths=$(( (${EPOCHREALTIME//[.,]/} - t0) / 100000 ))  # microseconds -> 0.1 s
    echo "ok    $name ($((tenths / 10)).$((tenths % 10)) s)"
  else
    failed=$((failed + 1))
    echo "FAIL  $name: $why"
    echo "      \$ $*"
    sed -n '1,40s/^/      out| /p' "$tmp/out"
    sed -n '1,40s/^/      err| /p' "$tmp/err"
  fi
}

# Whether a command takes --guideline DIR (helpers are adding it to every command).
takes_flag() {
  case "$flag_mode" in
    positional) return 1 ;;
    flag) return 0 ;;
    *) grep -q -- '--guideline' <("${cli[@]}" "$1" --help 2>/dev/null) ;;
  esac
}

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

serve_checks() {  # serve_checks TAG [ARG...]: start the service on a free loopback port, call it, always stop it
  local tag="$1" port url i
  shift
  port="$(free_port)"
  url="http://127.0.0.1:$port/cds-services"
  "${cli[@]}" serve "$@" --dev-no-auth --host 127.0.0.1 --port "$port" </dev/null >"$tmp/serve.out" 2>"$tmp/serve.err" &
  server_pid=$!
  for i in $(seq 1 100); do  # up to 30 s to start
    if "$venv/bin/python" "$client" "$url" >/dev/null 2>&1 || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.3
  done
  check "$tag serve${*:+ $*}: GET /cds-services" 0 '"id": ?"neutropenia-patient-view"' "$venv/bin/python" "$client" "$url"
  check "$tag serve${*:+ $*}: POST patient-view" 0 '"cards": ?\[.*"summary"' \
    "$venv/bin/python" "$client" "$url/neutropenia-patient-view" hook.json
  kill "$server_pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  # The server's log (stderr) must show it ran, and no traceback, up to its shutdown.
  check "$tag serve: its log, no traceback" 0 'Uvicorn running on http://127\.0\.0\.1' \
    bash -c 'cat "$1"; ! grep -q "Traceback (most recent call last)" "$1"' _ "$tmp/serve.err"
}

more() {  # a check of the full pass only: the second launcher runs each command once, to save time
  if [[ "$full" == 1 ]]; then "$@"; fi
}

commands() {  # every command through one launcher (cli); full=1 adds the error paths and variants
  local tag="$1"
  check "$tag evaluate FILE (text)" 0 '^IMMEDIATE$' "${cli[@]}" evaluate patient.json
  check "$tag evaluate FILE --format json" 0 '"code": "fn-empirical-iv-antibiotics"' \
    "${cli[@]}" evaluate patient.json --format json
  cp "$tmp/out" "$tag.json"
  IN=patient.json check "$tag evaluate - (stdin)" 0 '"fn_risk": "low"' "${cli[@]}" evaluate - --format json
  check "$tag evaluate --guideline DIR" 0 '^IMMEDIATE$' "${cli[@]}" evaluate patient.json --guideline old
  check "$tag evaluate --fhir" 0 '"fn_risk": "low"' "${cli[@]}" evaluate --fhir bundle.json --facts extra.json \
    --as-of 2024-05-03 --format json
  more check "$tag evaluate, a misspelt fact: exit 2" 2 'temprature.*temperature' "${cli[@]}" evaluate typo.json
  check "$tag evaluate --what-if --why-not CODE" 0 '"why_not": \[' "${cli[@]}" evaluate patient.json \
    --what-if --why-not fn-high-risk-inpatient --format json
  more check "$tag evaluate --why-not, an unknown code: exit 2" 2 "did you mean 'fn-oral-step-down'" \
    "${cli[@]}" evaluate patient.json --why-not fn-oral-stepdown
  check "$tag validate (bundled, installed copy)" 0 "site-packages/engine/bundled/guidelines/neutropenia: valid" \
    "${cli[@]}" validate
  check "$tag validate DIR" 0 '^old: valid' "${cli[@]}" validate old
  check "$tag check (bundled: every finding decided)" 0 ' 0 open finding' "${cli[@]}" check
  more check "$tag validate DIR, invalid: exit 2" 2 'rules/febrile-neutropenia.yaml:[0-9]+:[0-9]+: .*ancc' \
    "${cli[@]}" validate broken
  check "$tag test (bundled)" 0 ' passed, 0 failed' "${cli[@]}" test --min-coverage 100
  # Worker processes are spawned: each imports the installed engine afresh (~1 minute).
  more check "$tag test --mutate (bundled, spawned workers)" 0 'mutation score: .*\(100\.0%\)' \
    "${cli[@]}" test --mutate --min-score 100
  more check "$tag test DIR" 0 ' passed, 0 failed' "${cli[@]}" test old
  check "$tag render -o FILE.html" 0 '' "${cli[@]}" render -o "$tag.html"
  check "$tag render: the HTML document" 0 '<html' head -c 2000 "$tag.html"
  more check "$tag render DIR --format markdown -o FILE.md" 0 '' \
    "${cli[@]}" render old --format markdown -o "$tag.md"
  more check "$tag render: the Markdown document" 0 'Management of leukopenia and neutropenia' head -c 2000 "$tag.md"
  # diff is the slowest command (~10 s: it evaluates ~860 patients on both versions).
  if [[ "$full" == 1 ]]; then
    check "$tag diff OLD NEW --format json" 0 '"version_check"' "${cli[@]}" diff old new --format json
    check "$tag diff OLD NEW, a threshold changed without a version bump: exit 1" 1 \
      'threshold < 0\.5 → < 1\.0' "${cli[@]}" diff old unbumped
    check "$tag diff --rev, the bundled guideline is in no git repository: exit 2" 2 'not inside a git repository' \
      "${cli[@]}" diff --rev HEAD~1..HEAD
  else
    check "$tag diff --rev A..B DIR --format json" 0 '"version_check"' \
      "${cli[@]}" diff --rev HEAD~1..HEAD history/neutropenia --format json
  fi
  rm -f approved/releases.yaml
  check "$tag release DIR" 0 'version 1\.0\.0 recorded in releases\.yaml: sha256:' \
    "${cli[@]}" release approved --by "smoke test"
  check "$tag validate DIR --release" 0 'release check passed' "${cli[@]}" validate approved --release
  more check "$tag release DIR, a draft: exit 2" 2 'release refused' "${cli[@]}" release old
  rm -f "$tag.log"
  check "$tag evaluate --audit-log" 0 '^IMMEDIATE$' "${cli[@]}" evaluate patient.json --audit-log "$tag.log"
  IN=patient.json check "$tag evaluate - --audit-log" 0 '"code"' "${cli[@]}" evaluate - --format json \
    --audit-log "$tag.log"
  check "$tag audit verify LOG" 0 'valid — 2 line' "${cli[@]}" audit verify "$tag.log"
  more check "$tag audit verify, a missing log: exit 2" 2 'cannot read' "${cli[@]}" audit verify missing.log
  # --guideline DIR on the commands that take a folder, where they accept it (see GUIDELINE_FLAG).
  if takes_flag validate; then
    check "$tag validate --guideline DIR" 0 '^old: valid' "${cli[@]}" validate --guideline old
  fi
  if takes_flag test; then
    more check "$tag test --guideline DIR" 0 ' passed, 0 failed' "${cli[@]}" test --guideline old
  fi
  if takes_flag render; then
    check "$tag render --guideline DIR" 0 'Management of leukopenia' \
      "${cli[@]}" render --guideline old --format markdown
  fi
  if takes_flag release; then
    rm -f approved/releases.yaml
    check "$tag release --guideline DIR" 0 'recorded in releases\.yaml' "${cli[@]}" release --guideline approved
  fi
}


check "the engine imported is the installed one" 0 "^$venv/lib/python3[.0-9]+/site-packages/engine/__init__.py$" \
  "$venv/bin/python" -c 'import engine; print(engine.__file__)'
cli=("$venv/bin/guideline")
full=1
commands guideline
serve_checks guideline
cli=("$venv/bin/python" -m engine)
full=0
commands python-m-engine
serve_checks python-m-engine --guideline old
check "the JSON of guideline and python -m engine is the same" 0 '' cmp guideline.json python-m-engine.json
check "python: engine.load().evaluate(facts).to_dict() == the CLI's JSON" 0 '^fn-assess-resuscitate' \
  "$venv/bin/python" -c '
import json, engine
guideline = engine.load()
result = guideline.evaluate(json.load(open("patient.json")))
assert result.to_dict() == json.load(open("guideline.json")), "API and CLI results differ"
assert guideline.evaluate({"anc": 0.3}).to_dict() != result.to_dict()
print("\n".join(result.codes))'

echo "$passed passed, $failed failed ($((SECONDS - started)) s)"
[[ "$failed" == 0 ]]
