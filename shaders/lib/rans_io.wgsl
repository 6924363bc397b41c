// Bounded access to the decode kernels' bindings `inp`, `plan` and `outw`
// (rans_decode.wgsl, rans_fast.wgsl and rans_fast_lossy.wgsl declare them;
// prepended to each): reads past the end give 0, writes past the end are
// dropped.

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
