#!/usr/bin/env bash
# The GPU decoder on the lent GPU, in one run: every GPU test through both
# paths, then every benchmark, logs under $OUT, a summary table last.
#
# Here (build machine):
#   ../shared/gpu/pack.sh --tests            # binaries + test binaries -> .gpu/
#   mkdir -p .gpu/models && cp /tmp/m/bf16.wcodec /tmp/m/q8i.wcodec .gpu/models/   # optional, for `bench load`
# On the GPU machine (no cargo, no network):
#   bash .gpu/run.sh bash scripts/gpu_check.sh
#
# Models: every .gpu/models/*.wcodec (lossless) or *.safetensors gets a
# `bench load`. Budget: about 5 minutes on an H100. The exit status is 1 if
# a test failed, a benchmark failed, or a decode was not bit-exact.
# A dry run anywhere (e.g. lavapipe): GPU_CHECK_SIZES=1M GPU_CHECK_BIG=4M.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/wcodec-gpu-check}
mkdir -p "$OUT"
G=.gpu
W=$G/bin/wcodec
rc=0
t_start=$(date +%s)
note() { echo "[$(( $(date +%s) - t_start ))s] $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

if [ ! -x "$W" ]; then
  echo "gpu_check: $W is missing; run ../shared/gpu/pack.sh --tests first" >&2
  exit 2
fi

# --- the device
$W devices > "$OUT/devices.txt" 2>&1
$W devices --json > "$OUT/devices.json" 2>/dev/null
command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
note "devices: $(grep -m1 '^\[' "$OUT/devices.txt")"

# --- tests: shaders (no GPU), then the GPU tests through each path (the
# decode kernels run without wgpu's runtime checks: they clamp and bound
# everything themselves), and the subgroup path again with wgpu's checks on;
# the corrupt-stream test is in each.
run_test() { # name env... -- binary
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local bin=$1
  local log="$OUT/test_${name}.log"
  if env "${envs[@]}" timeout 600 "$bin" --test-threads 2 > "$log" 2>&1; then
    note "PASS  $name ($(grep -h 'test result' "$log" | tail -1))"
  else
    note "FAIL  $name (see $log)"; rc=1
  fi
}
for b in $G/tests/shaders-*; do run_test shaders X=1 -- "$b"; done
for b in $G/tests/gpu_context-*; do run_test gpu_context X=1 -- "$b"; done
for b in $G/tests/gpu_decode-*; do
  run_test gpu_decode_subgroup WCODEC_GPU_PATH=subgroup -- "$b"
  run_test gpu_decode_workgroup WCODEC_GPU_PATH=workgroup -- "$b"
  run_test gpu_decode_subgroup_checked WCODEC_GPU_PATH=subgroup WCODEC_GPU_CHECKS=1 -- "$b"
done
# the library's own unit tests (plan, pool, bench data)
for b in $G/tests/wcodec-*; do run_test "unit_$(basename "$b")" X=1 -- "$b"; done

# --- benchmarks
bench() { # name args...
  local name=$1; shift
  if timeout 900 $W bench "$@" --out "$OUT/bench_${name}.json" > "$OUT/bench_${name}.txt" 2>&1; then
    note "bench $name done"
  else
    note "bench $name FAILED (see $OUT/bench_${name}.txt)"; rc=1
  fi
}
SIZES=${GPU_CHECK_SIZES:-16M,256M,1G}
BIG=${GPU_CHECK_BIG:-1G}
bench decode decode --sizes "$SIZES" --sweep
bench decode_1d decode --layout 1d --sizes "$BIG" --kinds int8,bf16
bench decode_workgroup decode --path workgroup --sizes "$BIG"
WCODEC_GPU_CHECKS=1 bench decode_checked decode --sizes "$SIZES"
for m in $G/models/*.wcodec $G/models/*.safetensors; do
  [ -f "$m" ] || continue
  bench "load_$(basename "$m" | tr '.' '_')" load "$m"
done

# --- summary
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, glob, os, sys
out = sys.argv[1]
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
print()
for name in ["decode", "decode_checked", "decode_1d", "decode_workgroup"]:
    d = load(os.path.join(out, f"bench_{name}.json"))
    if not d:
        continue
    print(f"== bench {name}: {d['device']}; device copy {d['copy_gbs']:.0f} GB/s (shader {d['copy_shader_gbs']:.0f}, command {d['copy_command_gbs']:.0f})")
    print(f"{'kind':5} {'layout':6} {'size':>6} {'ratio':>7} {'GPU ms':>9} {'GB/s':>8} {'target':>7} {'nvCOMP':>7} {'%copy':>6} {'wall ms':>9} {'wall GB/s':>9}  variant")
    for r in d["results"]:
        size = f"{r['output_bytes'] >> 20}M"
        tgt = f"{r['target_gbs']:.0f}{'+' if r['meets_target'] else '-'}" if r.get("target_gbs") else "-"
        nv = f"{r['nvcomp_gbs']:.0f}" if r.get("nvcomp_gbs") else "-"
        print(f"{r['kind']:5} {r['layout']:6} {size:>6} {r['ratio']:7.4f} {r['gpu_ms']:9.3f} {r['gpu_gbs']:8.1f} {tgt:>7} {nv:>7} {100*r['fraction_of_copy']:5.0f}% {r['wall_ms']:9.1f} {r['output_bytes']/r['wall_ms']/1e6:9.2f}  {'; '.join(r['variants'])}")
    if d.get("sweep"):
        print(f"-- sweep (largest input of each kind)")
        for s in d["sweep"]:
            if s.get("error"):
                print(f"   {s['kind']:5} {s['tuning']:22} failed: {s['error'][:100]}")
            else:
                print(f"   {s['kind']:5} {s['tuning']:22} {s['gpu_ms']:9.3f} ms {s['gpu_gbs']:8.1f} GB/s  {'; '.join(s['variants'])}")
for p in sorted(glob.glob(os.path.join(out, "bench_load_*.json"))):
    d = load(p)
    if not d:
        continue
    g = f"{d['wcodec_gpu_ms']:.3f}" if d.get("wcodec_gpu_ms") is not None else "-"
    print(f"== load {os.path.basename(d['model'])}: {d['tensors']} tensors, ratio {d['ratio']:.4f}; safetensors uploads {d['safetensors_ms']:.2f} ms, "
          f".wcodec {d['wcodec_ms']:.2f} ms (GPU decode {g} ms), speedup {d['speedup']:.2f}x, verified {d['verified']}")
PY
note "gpu_check finished, status $rc"
exit $rc
