#!/usr/bin/env python3
"""nvCOMP ANS on the exact bytes of `wcodec bench decode`, on the same GPU, so
the decode table quotes a peer measured in the same run instead of CODEC.md's
figures.

    wcodec bench decode --sizes 16M,256M,1G --dump-inputs DIR   # raw inputs + manifest.json
    PYTHONPATH=$(scripts/fetch_nvcomp.sh) \\
        python3 scripts/peers_nvcomp.py DIR --out nvcomp.json  # this script
    wcodec bench decode --sizes 16M,256M,1G --peers nvcomp.json

For each input: compress with nvCOMP's ANS (the Python API of
nvidia-nvcomp-cu13, default 64 KiB chunks) as `|u1` bytes and, for bf16, also
as `<f2` (nvCOMP's 16-bit float mode, the entry the table quotes for bf16);
decode into a preallocated buffer with a decompression config built from the
compression config (nvCOMP's sync-free path); time each decode with a CUDA
event pair after 0.5 s of untimed decodes (GPU clock to boost), rotating
between copies so that every decode reads more than the 50 MB L2; report the
better of the per-call median and the back-to-back mean (in nvCOMP's
favour; both are in the JSON); check every output byte for byte against
the input, poisoned before each of the three phases. The xxh3 of an input
is the manifest's, passed through (Python has no xxh3); the script reads
the file the manifest names and checks its length. Needs PyTorch
(CUDA tensors and events) and numpy.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from nvidia import nvcomp


def copies_for(nbytes):
    """Copies to rotate so that each pass over them reads more than the L2."""
    return max(1, min(8, -(-100_000_000 // max(nbytes, 1))))


def measure(data_dev, n, data_type, stream, reps):
    codec = nvcomp.Codec(algorithm="ANS", data_type=data_type, cuda_stream=stream.cuda_stream)
    # nvCOMP's float mode wants a 16-bit float array (bf16 bytes viewed as
    # f16: the coder only models bytes, the values are never interpreted)
    src = nvcomp.as_array(data_dev.view(torch.float16) if data_type == "<f2" else data_dev)
    ccfg = codec.compression_config(n)
    k = copies_for(n)
    comps = [codec.encode(src, compression_config=ccfg) for _ in range(k)]
    # from the compressed header (synchronizes once, here)
    dcfg = codec.decompression_config(comps[0])
    outs = [torch.empty(n, dtype=torch.uint8, device="cuda") for _ in range(k)]
    # poison the outputs: an unwritten byte is caught
    for o in outs:
        o.fill_(0xA5)
    torch.cuda.synchronize()
    outs_nv = [nvcomp.as_array(o) for o in outs]
    for i in range(k):
        codec.decode(comps[i], out=outs_nv[i], decompression_config=dcfg)
    stream.synchronize()
    verified = all(torch.equal(o, data_dev) for o in outs)
    compressed = comps[0].buffer_size
    # untimed decodes: the GPU clock to boost
    t0 = time.time()
    i = 0
    while time.time() - t0 < 0.5:
        codec.decode(comps[i % k], out=outs_nv[i % k], decompression_config=dcfg)
        i += 1
        if i % 16 == 0:
            stream.synchronize()
    stream.synchronize()
    # poison again: the check after the timed decodes sees their outputs
    for o in outs:
        o.fill_(0xA5)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for r in range(reps):
        starts[r].record(stream)
        codec.decode(comps[r % k], out=outs_nv[r % k], decompression_config=dcfg)
        ends[r].record(stream)
    stream.synchronize()
    ms = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    # the copies the timed per-call run wrote
    verified = verified and all(torch.equal(outs[r % k], data_dev) for r in range(min(reps, k)))
    for o in outs:
        o.fill_(0xA5)
    torch.cuda.synchronize()
    # the same decodes back to back under one event pair: GPU throughput
    # without per-call host gaps (decode_ms is the better of the two, in
    # nvCOMP's favour; both are reported)
    batch = max(4, min(reps, 32))
    s0 = torch.cuda.Event(enable_timing=True)
    e0 = torch.cuda.Event(enable_timing=True)
    s0.record(stream)
    for r in range(batch):
        codec.decode(comps[r % k], out=outs_nv[r % k], decompression_config=dcfg)
    e0.record(stream)
    stream.synchronize()
    batch_ms = s0.elapsed_time(e0) / batch
    # the copies the back-to-back run wrote
    verified = verified and all(torch.equal(outs[r % k], data_dev) for r in range(min(batch, k)))
    med = statistics.median(ms)
    best = min(med, batch_ms)
    return {
        "compressed_bytes": compressed,
        "ratio": n / compressed,
        "decode_ms": best,
        "decode_gbs": n / best / 1e6,
        "decode_median_ms_per_call": med,
        "decode_min_ms_per_call": ms[0],
        "decode_ms_back_to_back": batch_ms,
        "runs": reps,
        "copies": k,
        "verified": bool(verified),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="the directory written by `wcodec bench decode --dump-inputs`")
    ap.add_argument("--out", required=True, help="the JSON for `wcodec bench decode --peers`")
    ap.add_argument("--reps", type=int, default=100)
    a = ap.parse_args()
    with open(os.path.join(a.dir, "manifest.json")) as f:
        manifest = json.load(f)
    dev = torch.cuda.get_device_name(0)
    print(f"device: {dev}; nvCOMP {nvcomp.__version__} (CUDA {nvcomp.__cuda_version__}); torch {torch.__version__}")
    stream = torch.cuda.Stream()
    results = []
    for m in manifest:
        path = os.path.join(a.dir, m["file"])
        host = np.fromfile(path, dtype=np.uint8)
        if host.size != m["bytes"]:
            sys.exit(f"{path}: {host.size} bytes, the manifest says {m['bytes']}")
        data = torch.from_numpy(host).cuda()
        types = ["|u1"] if m["kind"] == "int8" else ["|u1", "<f2"]
        primary = "|u1" if m["kind"] == "int8" else "<f2"
        for t in types:
            r = measure(data, m["bytes"], t, stream, a.reps)
            r.update(
                kind=m["kind"],
                bytes=m["bytes"],
                xxh3=m["xxh3"],
                codec=f"nvCOMP {nvcomp.__version__} ANS {t}",
                primary=t == primary,
                device=dev,
            )
            print(
                f"{m['kind']} {m['bytes']} {r['codec']}: ratio {r['ratio']:.4f}, decode {r['decode_ms']:.3f} ms = "
                f"{r['decode_gbs']:.1f} GB/s (per call median {r['decode_median_ms_per_call']:.3f} ms, back to back "
                f"{r['decode_ms_back_to_back']:.3f} ms), verified {r['verified']}"
            )
            results.append(r)
        del data
        torch.cuda.empty_cache()
    tmp = a.out + ".part"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, a.out)
    if not all(r["verified"] for r in results):
        sys.exit("an nvCOMP decode did not match its input")


if __name__ == "__main__":
    main()
