#!/usr/bin/env bash
# Train the runs behind the README's accuracy bars, one at a time (the build
# machine has 2 cores), with the real CLI and the shipped presets.
#
#   tools/train_bars.sh [RUNS_ROOT]            (default: runs/)
#
# Environment:
#   EDGEBNN_DATA        where mnist/ and fashion-mnist/ live
#   STOP_AFTER=HH:MM    (UTC) start no new run after this time of day
#
#   EDGEBNN_CODE=DIR    run the edgebnn package found in DIR (a frozen copy
#                       of the sources, so edits to the working tree during a
#                       long chain do not change the runs); default: installed
#
# A finished run (metrics.json present) is skipped; an interrupted one is
# resumed from its last finished epoch. Each run logs to RUNS_ROOT/NAME.log.
set -u
ROOT="${1:-runs}"
mkdir -p "$ROOT"
if [ -n "${EDGEBNN_CODE:-}" ]; then
  EDGEBNN=(python -c "import sys; sys.path.insert(0, sys.argv.pop(1)); from edgebnn.cli import main; sys.argv[0] = 'edgebnn'; main()" "$EDGEBNN_CODE")
else
  EDGEBNN=(edgebnn)
fi
PRESETS=(
  mnist-bcnn-binary
  mnist-bcnn-float
  mnist-bcnn-wide-binary
  fashion_mnist-bcnn-wide-binary
  mnist-bcnn-wide-float
  fashion_mnist-bcnn-wide-float
)
for name in "${PRESETS[@]}"; do
  out="$ROOT/$name"
  if [ -f "$out/metrics.json" ]; then
    echo "$(date -u +%T) $name: finished already, skipped"
    continue
  fi
  if [ -n "${STOP_AFTER:-}" ] && [[ "$(date -u +%H:%M)" > "$STOP_AFTER" ]]; then
    echo "$(date -u +%T) $name: not started (past STOP_AFTER=$STOP_AFTER UTC)"
    continue
  fi
  flags=()
  [ -f "$out/config.yml" ] && flags=(--resume)
  echo "$(date -u +%T) $name: edgebnn train --config $name --out $out ${flags[*]}"
  "${EDGEBNN[@]}" train --config "$name" --out "$out" "${flags[@]}" > "$ROOT/$name.log" 2>&1
  echo "$(date -u +%T) $name: exit $? $(tail -n 1 "$ROOT/$name.log")"
done
