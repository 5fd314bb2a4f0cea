#!/usr/bin/env bash
# Fuzzes tenure's untrusted-input parsers with cargo-fuzz (libFuzzer, nightly).
# Runs each target for FUZZ_SECONDS (default 600) one after another, niced so
# it never starves a build; exits non-zero if any target crashed or hung.
#   scripts/fuzz.sh                         # all five, 10 minutes each
#   FUZZ_SECONDS=60 scripts/fuzz.sh exec_line csv_import
# A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# The seed corpus is fuzz/corpus/<target>/seed-*; what a run adds stays local.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${FUZZ_SECONDS:-600}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
ALL=(term_input exec_line csv_import config_parse notice_render)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

if ! cargo +"$TOOLCHAIN" --version >/dev/null 2>&1; then
  echo "fuzzing needs a nightly toolchain: rustup toolchain install $TOOLCHAIN" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# No sanitizer: tenure is safe Rust and the targets look for panics, hangs and
# broken invariants; debug assertions on, so overflows panic too.
BUILD=(-s none --debug-assertions)
nice -n 19 cargo +"$TOOLCHAIN" fuzz build "${BUILD[@]}"

logs="$(mktemp -d)"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  extra=()
  # Escape sequences and pastes need length at once, not libFuzzer's slow ramp.
  [ "$t" = term_input ] && extra=(-len_control=0 -max_len=4096)
  echo "== $t: ${SECONDS_EACH}s" >&2
  if nice -n 19 cargo +"$TOOLCHAIN" fuzz run "${BUILD[@]}" "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "${extra[@]}" >"$logs/$t.log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  echo "== $t: $status, $execs executions (log: $logs/$t.log)" >&2
  [ "$status" = ok ] || tail -n 40 "$logs/$t.log" >&2
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crash or hang in ${targets[*]}" >&2
