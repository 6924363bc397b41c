// Bounded access to the decode kernels' bindings `inp`, `plan` and `outw`
// (rans_decode.wgsl, rans_fast.wgsl and rans_fast_lossy.wgsl declare them;
// prepended to each): reads past the end give 0, writes past the end are
// dropped. The same kernels declare their decode table `lut` (workgroup
// u32s) and NT (invocations per workgroup), which copy_lut fills.

fn inp_at(i: u32) -> u32 {
    if (i < arrayLength(&inp)) {
        return inp[i];
    }
    return 0u;
}

fn plan_at(i: u32) -> u32 {
    if (i < arrayLength(&plan)) {
        return plan[i];
    }
    return 0u;
}

fn out_store(i: u32, v: u32) {
    if (i < arrayLength(&outw)) {
        outw[i] = v;
    }
}

// `total` words of `plan` from `src` into `lut` (stores clamped to its `cap`
// entries), by the workgroup's NT invocations, eight loads in flight per
// invocation. A barrier must follow before `lut` is read.
fn copy_lut(src: u32, total: u32, cap: u32, li: u32) {
    for (var i = li; i < total; i += 8u * NT) {
        let v0 = plan_at(src + i);
        let v1 = plan_at(src + i + NT);
        let v2 = plan_at(src + i + 2u * NT);
        let v3 = plan_at(src + i + 3u * NT);
        let v4 = plan_at(src + i + 4u * NT);
        let v5 = plan_at(src + i + 5u * NT);
        let v6 = plan_at(src + i + 6u * NT);
        let v7 = plan_at(src + i + 7u * NT);
        lut[min(i, cap - 1u)] = v0;
        if (i + NT < total) {
            lut[min(i + NT, cap - 1u)] = v1;
        }
        if (i + 2u * NT < total) {
            lut[min(i + 2u * NT, cap - 1u)] = v2;
        }
        if (i + 3u * NT < total) {
            lut[min(i + 3u * NT, cap - 1u)] = v3;
        }
        if (i + 4u * NT < total) {
            lut[min(i + 4u * NT, cap - 1u)] = v4;
        }
        if (i + 5u * NT < total) {
            lut[min(i + 5u * NT, cap - 1u)] = v5;
        }
        if (i + 6u * NT < total) {
            lut[min(i + 6u * NT, cap - 1u)] = v6;
        }
        if (i + 7u * NT < total) {
            lut[min(i + 7u * NT, cap - 1u)] = v7;
        }
    }
}
