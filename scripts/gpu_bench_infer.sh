#!/usr/bin/env bash
# The inference kernels on the GPU machine (issue 4), from prebuilt binaries:
#
#   here:      ../shared/gpu/pack.sh --tests        # release bins, examples, test binaries -> .gpu/
#   GPU box:   bash scripts/gpu_bench_infer.sh      # no cargo, no network; logs under $OUT
#
# Runs, in about 5 minutes on an H100:
#   1. the GPU tests of the inference kernels (GEMV, compressed GEMV, softmax,
#      sampling, head) and the context, plus the library's unit tests;
#   2. `wcodec bench kernels` with unchecked shaders (WCODEC_GPU_CHECKS=0: every
#      kernel clamps its own indices) sweeping every tuning variant, then the
#      default variants again with wgpu's runtime checks on, for comparison;
#   3. `wcodec bench head` (batch 1 and 8, hidden state uploaded per token,
#      then kept on the device; spinning and blocking waits);
#   4. scripts/peers_torch.py (cuBLAS/PyTorch on the same GPU);
# then prints a short table: ours against targets and peers.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out-infer}
mkdir -p "$OUT"
R=".gpu/run.sh"
[ -x .gpu/bin/wcodec ] || { echo "no .gpu/bin/wcodec: run ../shared/gpu/pack.sh --tests first" >&2; exit 2; }
status=0
{
  echo "== $(date -u +%FT%TZ) $(uname -a)"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv 2>&1 || true
  bash "$R" .gpu/bin/wcodec devices 2>&1
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

echo "== 1. tests"
for t in shaders_infer gpu_context gpu_gemv gpu_gemv_rans gpu_softmax gpu_sample gpu_head wcodec; do
  exe=$(ls .gpu/tests/${t}-* 2>/dev/null | head -1)
  if [ -z "$exe" ]; then echo "   $t: not packed"; continue; fi
  start=$(date +%s)
  timeout 240 bash "$R" "$exe" --test-threads=1 > "$OUT/test_$t.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && status=1
  echo "   $t: rc $rc ($(( $(date +%s) - start )) s) $(grep -E '^test result' "$OUT/test_$t.log" | tail -1)"
done

echo "== 2. bench kernels"
WCODEC_GPU_CHECKS=0 timeout 400 bash "$R" .gpu/bin/wcodec bench kernels --stages --batch-diag --json > "$OUT/kernels.json" 2> "$OUT/kernels.log"
echo "   rc $? (rows in $OUT/kernels.log)"
timeout 200 bash "$R" .gpu/bin/wcodec bench kernels --no-sweep --json > "$OUT/kernels_checked.json" 2> "$OUT/kernels_checked.log"
echo "   with runtime checks: rc $?"

echo "== 3. bench head"
WCODEC_GPU_CHECKS=0 timeout 200 bash "$R" .gpu/bin/wcodec bench head --batch 1,8 --tokens 1000 --json > "$OUT/head.json" 2> "$OUT/head.log"
echo "   rc $?"
WCODEC_GPU_CHECKS=0 timeout 200 bash "$R" .gpu/bin/wcodec bench head --batch 1,8 --tokens 1000 --no-upload --json > "$OUT/head_noupload.json" 2> "$OUT/head_noupload.log"
echo "   no upload: rc $?"
WCODEC_GPU_CHECKS=0 timeout 200 bash "$R" .gpu/bin/wcodec bench head --batch 1 --tokens 500 --block --json > "$OUT/head_block.json" 2> "$OUT/head_block.log"
echo "   blocking waits: rc $?"
WCODEC_GPU_CHECKS=0 timeout 100 bash "$R" .gpu/bin/wcodec bench head --batch 1 --tokens 1000 --no-upload --copy-tokens > "$OUT/head_copy.txt" 2>&1
echo "   tokens copied to a readback buffer: rc $?"
WCODEC_GPU_CHECKS=0 timeout 100 bash "$R" .gpu/bin/wcodec bench head --batch 1 --tokens 1000 --no-upload --top-k 1 > "$OUT/head_greedy.txt" 2>&1
echo "   greedy: rc $?"
WCODEC_GPU_CHECKS=0 timeout 100 bash "$R" .gpu/bin/wcodec bench head --batch 1 --tokens 1000 --no-upload --top-k 0 --top-p 1.0 > "$OUT/head_temperature.txt" 2>&1
echo "   temperature alone: rc $?"
WCODEC_GPU_CHECKS=0 timeout 100 bash "$R" .gpu/bin/head 50257 2560 200 1 > "$OUT/example_head.txt" 2>&1
echo "   example: rc $?"

echo "== 4. peers (PyTorch)"
timeout 200 python3 scripts/peers_torch.py --json "$OUT/peers.json" > /dev/null 2> "$OUT/peers.log"
echo "   rc $?"

echo "== summary"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(out, n)))
    except Exception as e:
        print(f"({n}: {e})")
        return None
k, h, hn, hb, p = load("kernels.json"), load("head.json"), load("head_noupload.json"), load("head_block.json"), load("peers.json")
peer = {r["kernel"]: r["median_us"] for r in (p or {}).get("rows", [])}
if k:
    print(f"device: {k['device']}; copy: shader {k['copy']['shader_gbps']:.0f} GB/s, device {k['copy'].get('device_gbps') or 0:.0f} GB/s"
          + (f"; torch copy {p['copy_gbps']:.0f} GB/s" if p else ""))
    print(f"{'kernel':<38} {'ours µs':>9} {'target':>8} {'met':>4}  {'torch µs':>9}  best variant")
    alias = {"compressed": None, "sample top-k 50 top-p 0.9 50257": "sample top-k 50 top-p 0.9 50257 (topk first)",
             "gemv i8 50257x2560": "int8-weight matmul 50257x2560"}
    for s in k["summary"]:
        name = s["kernel"]
        key = alias.get(name, name)
        tp = peer.get(key) if key else None
        t = s.get("target_us")
        met = "-" if s.get("met") is None else ("yes" if s["met"] else "NO")
        print(f"{name:<38} {s['best_us']:>9.1f} {t if t is None else round(t,1)!s:>8} {met:>4}  {'-' if tp is None else f'{tp:.1f}':>9}  {s['best_variant']}")
    fails = [r for r in k["rows"] if r["check"].startswith("FAIL")]
    print(f"kernel checks: {len(k['rows']) - len(fails)} ok, {len(fails)} FAIL")
for name, hr in [("head (upload per token)", h), ("head (hidden on device)", hn), ("head (blocking waits)", hb)]:
    if hr:
        for r in hr["runs"]:
            print(f"{name} batch {r['batch']}: wall {r['wall']['median_us']:.1f} µs/step (p90 {r['wall']['p90_us']:.1f}), GPU {r['gpu']['median_us']:.1f} µs, {r['tokens_per_s']:.0f} tokens/s, allocations in loop: {'YES' if r['allocated_during_loop'] else 'none'} (target ≤ 150 µs)")
for key in [f"head f16 50257x2560 wall per token with .item() ({m})" for m in ("topk first", "full sort", "softmax + multinomial", "greedy")]:
    if key in peer:
        print(f"torch {key}: {peer[key]:.1f} µs")
PY
echo "logs: $OUT (exit $status)"
exit $status
