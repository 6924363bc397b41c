#!/usr/bin/env python3
"""Peers of `wcodec bench kernels` / `wcodec bench head` on the same GPU, with
PyTorch (cuBLAS): GEMV by torch.matmul for the same shapes and dtypes, an
int8-weight matmul, softmax, top-k + top-p sampling and an fp16 decoder head
with `.item()` readback. GPU time from CUDA events, median of many runs;
weight buffers rotate so each run reads more than the 50 MB L2; the device
copy bandwidth is measured in the same run.

    python3 scripts/peers_torch.py [--json OUT.json] [--reps 50] [--quick]
"""
import argparse
import json
import statistics
import sys
import time

import torch


def cuda_time(fn, reps, warmup=5):
    """Median/min/p90 of GPU time in µs of fn(i), one CUDA-event pair per run."""
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        starts[i].record()
        fn(i)
        ends[i].record()
    torch.cuda.synchronize()
    t = sorted(s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends))
    return {"median_us": statistics.median(t), "min_us": t[0], "p90_us": t[int(0.9 * (len(t) - 1))], "runs": reps}


def copies_for(nbytes):
    return max(1, min(8, -(-100_000_000 // nbytes)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda, "rows": []}
    rows = out["rows"]

    def add(name, st, nbytes=None, note=""):
        r = {"kernel": name, **st, "note": note}
        if nbytes:
            r["bytes"] = nbytes
            r["gbps"] = nbytes / (st["median_us"] * 1e-6) / 1e9
        rows.append(r)
        print(f"  {name:<46} {st['median_us']:>9.1} µs  {note}", file=sys.stderr)

    # Device copy bandwidth (read + write).
    n = (64 << 20) if a.quick else (512 << 20)
    src = torch.empty(n // 4, dtype=torch.float32, device=dev).uniform_()
    dst = torch.empty_like(src)
    st = cuda_time(lambda i: dst.copy_(src), a.reps)
    out["copy_gbps"] = 2 * n / (st["median_us"] * 1e-6) / 1e9
    add("device copy", st, 2 * n)
    del src, dst

    V, H = (5003, 512) if a.quick else (50257, 2560)
    SQ, BIG = (512, (1434, 512)) if a.quick else (4096, (14336, 4096))
    g = torch.Generator(device=dev).manual_seed(0)

    def gemv(name, rows_, cols, dtype, batch=1):
        w0 = (torch.randn(rows_, cols, device=dev, generator=g) * 0.02).to(dtype)
        ws = [w0] + [w0.clone() for _ in range(copies_for(w0.numel() * w0.element_size()) - 1)]
        x = torch.randn(cols, batch, device=dev, generator=g).to(dtype) if batch > 1 else torch.randn(cols, device=dev, generator=g).to(dtype)
        st = cuda_time(lambda i: torch.matmul(ws[i % len(ws)], x), a.reps)
        add(name, st, w0.numel() * w0.element_size(), f"{len(ws)} copies")
        del ws

    gemv(f"gemv f16 {V}x{H}", V, H, torch.float16)
    gemv(f"gemv f32 {V}x{H}", V, H, torch.float32)
    gemv(f"gemv f16 {SQ}x{SQ}", SQ, SQ, torch.float16)
    gemv(f"gemv f16 {BIG[0]}x{BIG[1]}", BIG[0], BIG[1], torch.float16)
    gemv(f"gemv f16 {V}x{H} batch8", V, H, torch.float16, batch=8)

    # int8 weights + per-row scales: dequantise then matmul (what torch offers on CUDA for a GEMV).
    w = torch.randn(V, H, device=dev, generator=g) * 0.02
    s = w.abs().amax(1) / 127
    q = torch.round(w / s[:, None]).clamp(-127, 127).to(torch.int8)
    s16 = s.to(torch.float16)
    x16 = torch.randn(H, device=dev, generator=g).to(torch.float16)
    del w
    st = cuda_time(lambda i: torch.matmul(q.to(torch.float16) * s16[:, None], x16), a.reps)
    add(f"int8-weight matmul {V}x{H}", st, q.numel() + 2 * V, "(q.half() * s) @ x")
    if hasattr(torch, "_weight_int8pack_mm"):
        try:
            xr = x16.view(1, H)
            torch._weight_int8pack_mm(xr, q, s16)
            st = cuda_time(lambda i: torch._weight_int8pack_mm(xr, q, s16), a.reps)
            add(f"int8-weight matmul {V}x{H} (_weight_int8pack_mm)", st, q.numel() + 2 * V)
        except Exception as e:  # not built for this device
            print(f"  _weight_int8pack_mm unavailable: {e}", file=sys.stderr)
    del q

    # Softmax.
    for r_, n_ in [(1, V), (8, V), (1, 152064 if not a.quick else 15206)]:
        lg = torch.randn(r_, n_, device=dev, generator=g) * 3
        st = cuda_time(lambda i: torch.softmax(lg, dim=-1), a.reps)
        add(f"softmax {r_}x{n_}", st, 8 * r_ * n_)

    # Sampling: top-k 50 + top-p 0.9 at T = 1.
    def topk_topp(logits, k=50, p=0.9, t=1.0):
        v, i = torch.topk(logits / t, k)
        pr = torch.softmax(v, -1)
        cum = torch.cumsum(pr, -1)
        pr = pr.masked_fill(cum - pr > p, 0.0)
        j = torch.multinomial(pr / pr.sum(-1, keepdim=True), 1)
        return i.gather(-1, j)

    def sort_topk_topp(logits, k=50, p=0.9, t=1.0):
        # The transformers TopK + TopP warpers: a full sort of the vocabulary.
        x = logits / t
        kth = torch.topk(x, k)[0][..., -1, None]
        x = x.masked_fill(x < kth, float("-inf"))
        sx, si = torch.sort(x, descending=False)
        cum = sx.softmax(-1).cumsum(-1)
        rm = cum <= (1 - p)
        rm[..., -1:] = False
        x = x.masked_fill(rm.scatter(-1, si, rm), float("-inf"))
        return torch.multinomial(torch.softmax(x, -1), 1)

    for n_ in [V, 152064 if not a.quick else 15206]:
        lg = torch.randn(1, n_, device=dev, generator=g) * 3
        add(f"sample top-k 50 top-p 0.9 {n_} (topk first)", cuda_time(lambda i: topk_topp(lg), a.reps))
        add(f"sample top-k 50 top-p 0.9 {n_} (full sort, HF warpers)", cuda_time(lambda i: sort_topk_topp(lg), a.reps))
        add(f"sample greedy {n_}", cuda_time(lambda i: torch.argmax(lg, -1), a.reps))

    # fp16 decoder head: GEMV -> softmax -> top-k/top-p sample, token read back with .item().
    wh = (torch.randn(V, H, device=dev, generator=g) * 0.02).to(torch.float16)
    hs = [torch.randn(H, device=dev, generator=g).to(torch.float16) for _ in range(4)]

    def head(i):
        logits = torch.matmul(wh, hs[i % 4]).float()
        return topk_topp(logits.view(1, -1))

    def head_sort(i):
        logits = torch.matmul(wh, hs[i % 4]).float()
        return sort_topk_topp(logits.view(1, -1))

    def head_multinomial(i):
        # Plain temperature sampling: softmax, then one multinomial draw.
        logits = torch.matmul(wh, hs[i % 4]).float()
        return torch.multinomial(torch.softmax(logits.view(1, -1), -1), 1)

    def head_greedy(i):
        return torch.argmax(torch.matmul(wh, hs[i % 4]).float())

    add(f"head f16 {V}x{H} GPU time (topk first)", cuda_time(head, a.reps))
    add(f"head f16 {V}x{H} GPU time (full sort)", cuda_time(head_sort, a.reps))
    add(f"head f16 {V}x{H} GPU time (softmax + multinomial)", cuda_time(head_multinomial, a.reps))
    add(f"head f16 {V}x{H} GPU time (greedy)", cuda_time(head_greedy, a.reps))
    # A few hundred ms of work first: the GPU idles at low clocks.
    t_end = time.perf_counter() + 0.5
    while time.perf_counter() < t_end:
        head(0).item()
    for name, fn in [("topk first", head), ("full sort", head_sort),
                     ("softmax + multinomial", head_multinomial), ("greedy", head_greedy)]:
        for i in range(20):
            fn(i).item()
        wall = []
        for i in range(a.tokens):
            t0 = time.perf_counter()
            fn(i).item()
            wall.append((time.perf_counter() - t0) * 1e6)
        wall.sort()
        st = {"median_us": statistics.median(wall), "min_us": wall[0], "p90_us": wall[int(0.9 * (len(wall) - 1))], "runs": len(wall)}
        add(f"head f16 {V}x{H} wall per token with .item() ({name})", st)

    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
