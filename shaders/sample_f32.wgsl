// Token sampling: greedy, temperature, top-k, top-p and their combinations,
// exactly the algorithm of src/cpu/sample.rs (read its header first). The
// file follows lib/u64.wgsl (u64 helpers, Philox).
//
// Dispatches (no softmax needed):
//
//   max_part (MAXSPLIT only): grid (NBS, rows), PWG invocations: block b's
//            maximum (and its first index) over its own PWG · PW words,
//            stored after the histograms in `hist`.
//   prepare: grid (NBS, rows), PWG invocations. Every block first finds the
//            row maximum M (and its first index) itself, reading the whole
//            row (16-byte loads; the row is in L2): that costs far less than
//            a dispatch of its own. Greedy rows end here (one block writes
//            the first index of M). Otherwise each block of PWG · PW vec4
//            words (8 tokens a word) computes each token's distance d (two
//            f32 operations, then integers), stores d as u16 pairs, and
//            writes its coarse histogram over bins d >> 8: (count, weight
//            as u64) per bin. With LCAP > 0 and a top-k, each block also
//            finds its local top-k bin (the first bin where its own
//            candidates reach k) and, when its candidates up to that bin
//            number at most LCAP, writes them as (d, index) to its local
//            list (else it marks the list as overflowing). With
//            `p.buckets` (parameters that take `select`'s general path),
//            each block also writes its tokens grouped by coarse bin (its
//            bucket lists, see "buckets" below). With `p.plain`
//            (temperature alone) each block writes only its total weight
//            instead (see "plain draw" below).
//   select:  grid (rows), one workgroup of SWG (≥ 256) per row. Sums the
//            coarse histograms and finds the top-k bin c_k. Fast path, when
//            the tokens in bins ≤ c_k number at most CAP (top-k of up to a
//            few hundred, as used in practice): one pass over the row's
//            distances collects them, each gets its rank in (d, index)
//            order by counting, and top-k, top-p and the draw are prefix
//            sums and "first j with ..." tests over that sorted list (a
//            handful of barriers). When every block's local list is
//            complete, the union of those lists stands in for the row: it
//            holds every token of the bins up to the row's top-k bin (a
//            block with k candidates up to its local bin c_b bounds the
//            row's c_k ≤ c_b; a block with fewer gives all of its
//            candidates), so its histogram gives the same c_k and count,
//            and collecting from it gives the same tokens as the pass over
//            the row's distances, reading ~NBS · LCAP entries instead of
//            all n distances and no coarse histograms. Temperature alone
//            takes the plain draw (index order: the block, then the token,
//            from prefix sums; no ranking). Otherwise (top-p alone, a
//            huge top-k, large ties) the general path: fine histograms of
//            single coarse bins and integer scans, then the token's index
//            among those with its distance. With bucket lists each of those
//            reads one coarse bin's entries (the row's tokens in that bin);
//            without (top-k ≤ 512 rows whose ties overflow the fast path,
//            rows of more than LC_BLOCKS blocks) each is a pass over the
//            row's distances.
//            Increments the row's step counter when AUTO_STEP.
//
// Bindings: 0 logits, 1 the same logits as vec4 (the first whole 16-byte
// words; `vec_ok` says whether to use it), 2 EXP2 table (2048 u32),
// 3 distances (vec4<u32> = 8 u16; after every row's, the bucket lists),
// 4 coarse histograms (vec4<u32> per bin: count, weight low, weight high,
// the bin's first bucket-list entry; then one max partial per block; then,
// LCAP > 0, each block's local list: a status word (count or LC_OVER, the
// local bin) and LCAP / 2 words of two (d, index) pairs), 5 step counters (u64 per row),
// 6 tokens (u32 per row), 7 params, 8 external max partials (EXTMAX; else
// any small buffer).
//
// Bounds: all indices are clamped into their bindings; loops are bounded by
// the uniform's sizes.

override PWG: u32 = 256u;
override PW: u32 = 4u;
override SWG: u32 = 1024u;
override AUTO_STEP: bool = true;
// The row maximum from a `max_part` dispatch before `prepare` (each block's
// maximum over its own tokens, then `prepare` combines the NBS partials in
// block order) instead of every `prepare` block reading the whole row.
override MAXSPLIT: bool = false;
// The row maximum from `xparts` partials per row in binding 8 (vec2: the
// sanitised value's bits, its index), written by the GEMV before (its
// max-partials epilogue): `prepare` reduces them itself and no `max_part`
// runs. Takes precedence over MAXSPLIT.
override EXTMAX: bool = false;
// Benchmarks only: the general path of `select` stops early (1: after the
// top-k fine pass, 2: after top-p, 3: before the token search); 4: `prepare`
// stops after the row maximum; 5: `select` stops once it has the top-k bin,
// 6: the fast path stops after collecting its candidates. The plain draw
// honours 5 (the token is its block) and 3 (the owner of its words). The
// token is then meaningless. 7: the token is the path `select` took instead
// (0: the fast path from the blocks' local lists, 1: the fast path over the
// row's distances, 2: the general path, 3: the plain draw), for tests. 8: the general path runs
// through and the token says how it found the token (2: passes over the
// row's distances, 3: the bucket lists, 4: the bucket lists, then a pass
// over the row because more than CAP tokens share the token's distance).
override DIAG: u32 = 0u;
// Local candidate lists: entries per `prepare` block (0: none; even).
override LCAP: u32 = 0u;

struct Params {
    n: u32,          // row length
    rows: u32,
    ld_in: u32,      // logits row stride (elements)
    vec_ok: u32,     // 1: binding 1 views the logits as vec4
    nbs: u32,        // prepare blocks per row
    ld_d: u32,       // distance words (vec4) per row
    scale: f32,      // S = 2954.6394 / T
    top_k: u32,      // 0: all
    p_fixed: u32,    // floor(top_p · 2^24), 2^24 for 1
    seed_lo: u32,
    seed_hi: u32,
    greedy: u32,     // 1: argmax (T = 0 or k = 1)
    xparts: u32,     // EXTMAX: partials per row in binding 8
    buckets: u32,    // 1: bucket lists (see the header); honoured for nbs ≤ LC_BLOCKS
    plain: u32,      // 1: temperature alone, the draw in index order ("plain draw" below)
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> logits4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> exp2tab: array<u32>;
@group(0) @binding(3) var<storage, read_write> dist: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> hist: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> steps: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(7) var<uniform> p: Params;
@group(0) @binding(8) var<storage, read> xmax: array<vec2<u32>>;

const NEG_MAX: f32 = -3.40282347e+38;
const D_MAX: u32 = 65535u;
// The largest distance with a weight > 0 (EXP2[0] >> 31 = 1; 31·2048).
const D_LAST: u32 = 63488u;

fn sanitize(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return NEG_MAX;
    }
    return clamp(x, NEG_MAX, -NEG_MAX);
}

// The EXP2 table in workgroup memory: `prepare` and `select_token` copy it
// first (load_exp2; one round trip overlapping their first loads) so that no
// weight lookup waits on memory: after a GEMV has streamed its weights
// through L2, each of those was a cache miss on the critical path.
var<workgroup> e2: array<u32, 2048>;

fn load_exp2(lid: u32, threads: u32) {
    let n = min(arrayLength(&exp2tab), 2048u);
    for (var i = lid; i < 2048u; i += threads) {
        e2[i] = exp2tab[min(i, n - 1u)];
    }
}

// Needs load_exp2 and a barrier since.
fn weight(d: u32) -> u32 {
    let dd = min(d, D_MAX);
    return e2[dd & 2047u] >> (dd >> 11u);
}

fn distance(m: f32, s: f32) -> u32 {
    let z = (m - s) * p.scale;
    if (z >= 65535.0) {
        return D_MAX;
    }
    return u32(z);
}


// ---------------------------------------------------------------- prepare

var<workgroup> pm: array<f32, PWG>;
var<workgroup> pi: array<u32, PWG>;

// (m, i) better than (n, j): larger value, or equal and lower index.
fn better(m: f32, i: u32, n: f32, j: u32) -> bool {
    return m > n || (m == n && i < j);
}

struct Best {
    m: f32,
    i: u32,
}

// `b` updated with four consecutive logits, the first at index `base`.
fn best4(b: Best, q: vec4<f32>, base: u32) -> Best {
    var o = b;
    let v0 = sanitize(q.x);
    if (better(v0, base, o.m, o.i)) {
        o = Best(v0, base);
    }
    let v1 = sanitize(q.y);
    if (better(v1, base + 1u, o.m, o.i)) {
        o = Best(v1, base + 1u);
    }
    let v2 = sanitize(q.z);
    if (better(v2, base + 2u, o.m, o.i)) {
        o = Best(v2, base + 2u);
    }
    let v3 = sanitize(q.w);
    if (better(v3, base + 3u, o.m, o.i)) {
        o = Best(v3, base + 3u);
    }
    return o;
}

// The sanitised row maximum M (bits, in .x) and the first index where it
// occurs (.y), for the whole workgroup; every block of a row reads the row.
fn row_max(row: u32, lid: u32) -> vec2<u32> {
    let nl = arrayLength(&logits);
    let start = row * p.ld_in;
    let end = start + p.n;
    var v0 = (start + 3u) / 4u;
    var v1 = min(end / 4u, arrayLength(&logits4));
    if (p.vec_ok == 0u || v1 <= v0) {
        v0 = 0u;
        v1 = 0u;
    }
    // Scalar head [start, he) and tail [ts, end); 16-byte words [v0, v1) between.
    var he = end;
    var ts = end;
    if (v1 > v0) {
        he = min(4u * v0, end);
        ts = 4u * v1;
    }
    var m = NEG_MAX;
    var mi = 0xffffffffu;
    for (var g = start + lid; g < he; g += PWG) {
        let v = sanitize(logits[min(g, nl - 1u)]);
        if (better(v, g - start, m, mi)) {
            m = v;
            mi = g - start;
        }
    }
    for (var g = ts + lid; g < end; g += PWG) {
        let v = sanitize(logits[min(g, nl - 1u)]);
        if (better(v, g - start, m, mi)) {
            m = v;
            mi = g - start;
        }
    }
    // Four 16-byte loads in flight per invocation, then singles.
    var best = Best(m, mi);
    var k = v0 + lid;
    loop {
        if (k + 3u * PWG >= v1) {
            break;
        }
        let q0 = logits4[k];
        let q1 = logits4[k + PWG];
        let q2 = logits4[k + 2u * PWG];
        let q3 = logits4[k + 3u * PWG];
        best = best4(best, q0, 4u * k - start);
        best = best4(best, q1, 4u * (k + PWG) - start);
        best = best4(best, q2, 4u * (k + 2u * PWG) - start);
        best = best4(best, q3, 4u * (k + 3u * PWG) - start);
        k += 4u * PWG;
    }
    loop {
        if (k >= v1) {
            break;
        }
        best = best4(best, logits4[k], 4u * k - start);
        k += PWG;
    }
    return wg_best(lid, best);
}

// The workgroup's best (value bits, index) of every invocation's `b`
// (a tree in workgroup memory; all invocations get it).
fn wg_best(lid: u32, b: Best) -> vec2<u32> {
    pm[lid] = b.m;
    pi[lid] = b.i;
    for (var off = PWG / 2u; off > 0u; off = off / 2u) {
        workgroupBarrier();
        if (lid < off) {
            let n2 = pm[lid + off];
            let j2 = pi[lid + off];
            if (better(n2, j2, pm[lid], pi[lid])) {
                pm[lid] = n2;
                pi[lid] = j2;
            }
        }
    }
    workgroupBarrier();
    let r = vec2<u32>(bitcast<u32>(pm[0]), pi[0]);
    workgroupBarrier();
    return r;
}
var<workgroup> pc: array<atomic<u32>, 256>;
var<workgroup> lgrp: array<atomic<u32>, 16>;
var<workgroup> pwl: array<atomic<u32>, 256>;
var<workgroup> pwh: array<atomic<u32>, 256>;

fn hist_add(bin: u32, cnt: u32, w: vec2<u32>) {
    if (cnt == 0u) {
        return;
    }
    atomicAdd(&pc[bin], cnt);
    if (LCAP > 0u) {
        // Counts per group of 16 bins, for the local top-k bin.
        atomicAdd(&lgrp[bin / 16u], cnt);
    }
    let old = atomicAdd(&pwl[bin], w.x);
    let carry = select(0u, 1u, old + w.x < old);
    if (w.y + carry != 0u) {
        atomicAdd(&pwh[bin], w.y + carry);
    }
}

// Logit i of the row starting at element `start` (sanitised later), or −max past the row.
fn logit_at(start: u32, i: u32) -> f32 {
    if (i >= p.n) {
        return NEG_MAX;
    }
    return logits[min(start + i, arrayLength(&logits) - 1u)];
}

// The 8 logits of distance word j = i0 / 8 (16-byte loads when `aligned`;
// past the row: −max, and the callers ignore those indices).
struct Word8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn word_logits(start: u32, i0: u32, aligned: bool) -> Word8 {
    let w4 = (start + i0) / 4u;
    if (aligned && w4 + 1u < arrayLength(&logits4)) {
        return Word8(logits4[w4], logits4[w4 + 1u]);
    }
    return Word8(
        vec4<f32>(logit_at(start, i0), logit_at(start, i0 + 1u), logit_at(start, i0 + 2u), logit_at(start, i0 + 3u)),
        vec4<f32>(logit_at(start, i0 + 4u), logit_at(start, i0 + 5u), logit_at(start, i0 + 6u), logit_at(start, i0 + 7u)),
    );
}

// Token i's distance from the maximum m (D_MAX past the row).
fn tok_d(m: f32, x: f32, i: u32) -> u32 {
    if (i >= p.n) {
        return D_MAX;
    }
    return distance(m, sanitize(x));
}

// A run of equal coarse bins, added to the histogram when the bin changes.
struct Run {
    bin: u32,
    cnt: u32,
    w: vec2<u32>,
}

fn run_add(r: Run, d: u32) -> Run {
    let w = weight(d);
    if (w == 0u) {
        return r;
    }
    var o = r;
    let bin = d >> 8u;
    if (bin != r.bin) {
        hist_add(min(r.bin, 255u), r.cnt, r.w);
        o = Run(bin, 0u, vec2<u32>(0u, 0u));
    }
    o.cnt += 1u;
    o.w = u64_add(o.w, vec2<u32>(w, 0u));
    return o;
}

// Where block `blk` of `row` keeps its partial maximum in `hist` (after the histograms).
fn part_at(row: u32, blk: u32) -> u32 {
    return min(p.rows * p.nbs * 256u + row * p.nbs + blk, arrayLength(&hist) - 1u);
}

// `b` updated with token i's logit x (ignored past the row).
fn best1(b: Best, x: f32, i: u32) -> Best {
    if (i >= p.n) {
        return b;
    }
    let v = sanitize(x);
    if (better(v, i, b.m, b.i)) {
        return Best(v, i);
    }
    return b;
}

@compute @workgroup_size(PWG)
fn max_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let blk = wid.x;
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    let start = row * p.ld_in;
    let aligned = p.vec_ok != 0u && (start & 3u) == 0u;
    var best = Best(NEG_MAX, 0xffffffffu);
    for (var k = 0u; k < PW; k++) {
        let j = (blk * PW + k) * PWG + lid;
        if (j < p.ld_d) {
            let i0 = j * 8u;
            let w8 = word_logits(start, i0, aligned);
            let lo = w8.lo;
            let hi = w8.hi;
            best = best1(best, lo.x, i0);
            best = best1(best, lo.y, i0 + 1u);
            best = best1(best, lo.z, i0 + 2u);
            best = best1(best, lo.w, i0 + 3u);
            best = best1(best, hi.x, i0 + 4u);
            best = best1(best, hi.y, i0 + 5u);
            best = best1(best, hi.z, i0 + 6u);
            best = best1(best, hi.w, i0 + 7u);
        }
    }
    let r = wg_best(lid, best);
    if (lid == 0u && wid.y < p.rows && blk < p.nbs) {
        hist[part_at(row, blk)] = vec4<u32>(r.x, r.y, 0u, 0u);
    }
}

// The row maximum (bits, .x) and its first index (.y) from the NBS partials
// of `max_part`, combined in block order (the same in every invocation).
fn row_max_split(row: u32) -> vec2<u32> {
    var m = NEG_MAX;
    var mi = 0xffffffffu;
    for (var b = 0u; b < p.nbs; b++) {
        let q = hist[part_at(row, b)];
        let v = bitcast<f32>(q.x);
        if (better(v, q.y, m, mi)) {
            m = v;
            mi = q.y;
        }
    }
    return vec2<u32>(bitcast<u32>(m), mi);
}

// The row maximum (bits, .x) and its first index (.y) from the `xparts`
// external partials of the row: every invocation strides over them, then a
// workgroup tree. (value desc, index asc) is a total order, so the result
// does not depend on the order of the partials.
fn row_max_ext(row: u32, lid: u32) -> vec2<u32> {
    let np = p.xparts;
    let nx = arrayLength(&xmax);
    var best = Best(NEG_MAX, 0xffffffffu);
    for (var i = lid; i < np; i += PWG) {
        let q = xmax[min(row * np + i, nx - 1u)];
        let v = sanitize(bitcast<f32>(q.x));
        if (better(v, q.y, best.m, best.i)) {
            best = Best(v, q.y);
        }
    }
    return wg_best(lid, best);
}

@compute @workgroup_size(PWG)
fn prepare(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let blk = wid.x;
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    for (var b = lid; b < 256u; b += PWG) {
        atomicStore(&pc[b], 0u);
        atomicStore(&pwl[b], 0u);
        atomicStore(&pwh[b], 0u);
    }
    if (LCAP > 0u) {
        if (lid < 16u) {
            atomicStore(&lgrp[lid], 0u);
        }
        if (lid == 0u) {
            atomicStore(&lcnt, 0u);
            lsel[0] = LC_OVER;
        }
    }
    if (p.greedy == 0u) {
        load_exp2(lid, PWG);
    }
    var mx: vec2<u32>;
    if (EXTMAX) {
        mx = row_max_ext(row, lid);
    } else if (MAXSPLIT) {
        mx = row_max_split(row);
        workgroupBarrier();
    } else {
        mx = row_max(row, lid);
    }
    if (DIAG == 4u) {
        if (blk == 0u) {
            finish(wid.y, lid, mx.y);
        }
        return;
    }
    if (p.greedy != 0u) {
        // Greedy: the first index of the maximum (one block per row is dispatched).
        if (blk == 0u) {
            finish(wid.y, lid, mx.y);
        }
        return;
    }
    let m = bitcast<f32>(mx.x);
    // This invocation's words (8 tokens each); equal bins in a run are added once.
    var run = Run(0xffffffffu, 0u, vec2<u32>(0u, 0u));
    let nd = arrayLength(&dist);
    let start = row * p.ld_in;
    let aligned = p.vec_ok != 0u && (start & 3u) == 0u;
    var word0 = vec4<u32>(0xffffffffu);
    var wsum = vec2<u32>(0u, 0u);
    for (var k = 0u; k < PW; k++) {
        let j = (blk * PW + k) * PWG + lid;
        if (j < p.ld_d) {
            let i0 = j * 8u;
            let w8 = word_logits(start, i0, aligned);
            let lo = w8.lo;
            let hi = w8.hi;
            let d0 = tok_d(m, lo.x, i0);
            let d1 = tok_d(m, lo.y, i0 + 1u);
            let d2 = tok_d(m, lo.z, i0 + 2u);
            let d3 = tok_d(m, lo.w, i0 + 3u);
            let d4 = tok_d(m, hi.x, i0 + 4u);
            let d5 = tok_d(m, hi.y, i0 + 5u);
            let d6 = tok_d(m, hi.z, i0 + 6u);
            let d7 = tok_d(m, hi.w, i0 + 7u);
            let v = vec4<u32>(d0 | (d1 << 16u), d2 | (d3 << 16u), d4 | (d5 << 16u), d6 | (d7 << 16u));
            if (p.plain != 0u) {
                wsum = u64_add(wsum, word_weight(v));
            } else {
                run = run_add(run, d0);
                run = run_add(run, d1);
                run = run_add(run, d2);
                run = run_add(run, d3);
                run = run_add(run, d4);
                run = run_add(run, d5);
                run = run_add(run, d6);
                run = run_add(run, d7);
            }
            dist[min(row * p.ld_d + j, nd - 1u)] = v;
            if (k == 0u) {
                word0 = v;
            }
        }
    }
    if (p.plain != 0u) {
        // The plain draw needs only the block's total weight.
        let tot = block_total(lid, wsum);
        if (lid == 0u && wid.y < p.rows && blk < p.nbs) {
            hist[min((row * p.nbs + blk) * 256u, arrayLength(&hist) - 1u)] = vec4<u32>(0u, tot.x, tot.y, 0u);
        }
        return;
    }
    hist_add(min(run.bin, 255u), run.cnt, run.w);
    workgroupBarrier();
    let bk = buckets_on();
    if (bk) {
        bucket_starts(lid);
    }
    let nh = arrayLength(&hist);
    let own = wid.y < p.rows && blk < p.nbs;
    if (own) {
        for (var b = lid; b < 256u; b += PWG) {
            let start = select(0u, atomicLoad(&bcur[b]), bk);
            hist[min((row * p.nbs + blk) * 256u + b, nh - 1u)] =
                vec4<u32>(atomicLoad(&pc[b]), atomicLoad(&pwl[b]), atomicLoad(&pwh[b]), start);
        }
    }
    if (bk) {
        // (The starts are read above before the scatter moves them.)
        workgroupBarrier();
        if (own) {
            bucket_scatter(row, blk, lid, word0);
        }
    }
    // (`select` reads lists only of rows of at most LC_BLOCKS blocks.)
    if (LCAP > 0u && p.top_k != 0u && p.nbs <= LC_BLOCKS) {
        local_list(row, blk, lid, wid.y < p.rows && blk < p.nbs, word0);
    }
}

// ---------------------------------------------------------------- buckets

// With `p.buckets` (top-p alone, or a top-k past the fast path), each `prepare` block also writes its bucket lists: its tokens with
// a weight > 0 grouped by coarse bin (a counting sort, unordered within a
// bin), each entry (d mod 256) << 24 | the token's index within the block.
// Bin b's entries start at the block's count of tokens in bins < b (the
// fourth word of the block's histogram entry). They live in `dist` after
// every row's distance words: a region of PWG · PW · 8 u32 per block. So
// `select`'s general path reads the entries of one coarse bin (the row's
// share of one bin, tens to hundreds of tokens) wherever it would scan the
// row's distances for it.

// Whether bucket lists are written and read (rows of at most LC_BLOCKS blocks).
fn buckets_on() -> bool {
    return p.buckets != 0u && p.nbs <= LC_BLOCKS;
}

// The u32 index in `dist` of entry e of block `blk`'s bucket lists of `row`.
fn bucket_at(row: u32, blk: u32, e: u32) -> u32 {
    let per_block = PWG * PW * 8u;
    return (p.rows * p.ld_d + row * p.nbs * (per_block / 4u)) * 4u + blk * per_block + e;
}

fn bucket_store(q: u32, v: u32) {
    dist[min(q >> 2u, arrayLength(&dist) - 1u)][q & 3u] = v;
}

fn bucket_load(q: u32) -> u32 {
    return dist[min(q >> 2u, arrayLength(&dist) - 1u)][q & 3u];
}

// Per bin, the next free entry of the block's bucket lists (first: the start).
var<workgroup> bcur: array<atomic<u32>, 256>;
var<workgroup> bgrp: array<u32, 16>;

// After the block's histogram is complete (and a barrier): each bin's start,
// the exclusive prefix sum of the counts in two levels (16 groups of 16).
fn bucket_starts(lid: u32) {
    if (lid < 16u) {
        var g = 0u;
        for (var r = 0u; r < 16u; r++) {
            g += atomicLoad(&pc[16u * lid + r]);
        }
        bgrp[lid] = g;
    }
    workgroupBarrier();
    for (var b = lid; b < 256u; b += PWG) {
        let grp = b / 16u;
        var s = 0u;
        for (var q = 0u; q < 16u; q++) {
            s += select(0u, bgrp[q], q < grp);
        }
        for (var r = 0u; r < 16u; r++) {
            s += select(0u, atomicLoad(&pc[16u * grp + r]), r < b % 16u);
        }
        atomicStore(&bcur[b], s);
    }
    workgroupBarrier();
}

// Word j of `row`'s distances, this `prepare` invocation's k-th: k = 0 from
// the register `word0`, the others read back from `dist` (its own writes).
fn own_word(row: u32, j: u32, k: u32, word0: vec4<u32>) -> vec4<u32> {
    if (k == 0u) {
        return word0;
    }
    return dist[min(row * p.ld_d + j, arrayLength(&dist) - 1u)];
}

// This invocation's tokens into the block's bucket lists (`word0`: its
// first distance word).
fn bucket_scatter(row: u32, blk: u32, lid: u32, word0: vec4<u32>) {
    for (var k = 0u; k < PW; k++) {
        let j = (blk * PW + k) * PWG + lid;
        if (j < p.ld_d) {
            let v = own_word(row, j, k, word0);
            let l0 = (k * PWG + lid) * 8u;
            for (var t = 0u; t < 8u; t++) {
                let d = word_d(v, t);
                if (d <= D_LAST) {
                    let e = atomicAdd(&bcur[d >> 8u], 1u);
                    bucket_store(bucket_at(row, blk, e), ((d & 255u) << 24u) | (l0 + t));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- plain draw

// Temperature alone (`p.plain`: no top-k cut, top-p 1) lays the weights out
// in index order (src/cpu/sample.rs, step 8), so nothing is ranked: each
// `prepare` block writes only its total weight (the first histogram entry of
// the block: 0, weight low, weight high, 0; no histogram, no lists), and
// `select` finds the block whose interval holds the draw U, then the token
// inside that block from its distances: two searches over prefix sums.

var<workgroup> psum: array<vec2<u32>, PWG>;

// The 8 weights of a distance word, summed.
fn word_weight(v: vec4<u32>) -> vec2<u32> {
    var s = vec2<u32>(0u, 0u);
    for (var t = 0u; t < 8u; t++) {
        s = u64_add(s, vec2<u32>(weight(word_d(v, t)), 0u));
    }
    return s;
}

// The sum of every invocation's `s` (a tree in workgroup memory; all invocations call it).
fn block_total(lid: u32, s: vec2<u32>) -> vec2<u32> {
    psum[lid] = s;
    for (var off = PWG / 2u; off > 0u; off = off / 2u) {
        workgroupBarrier();
        if (lid < off) {
            psum[lid] = u64_add(psum[lid], psum[lid + off]);
        }
    }
    workgroupBarrier();
    return psum[0];
}

var<workgroup> gs64: array<vec2<u32>, 32>;
var<workgroup> fint: vec4<u32>;

// Lay cum[0..cnt) (cnt ≤ CAP) end to end and find the entry whose interval
// holds `goal` (with `draw`: floor(total · r / 2^64), the row's U; either
// way below the total): (entry, the goal's offset into it as u64). In
// groups of ⌈cnt / 32⌉ entries: invocation g < 32 sums group g, then the
// one whose group holds the goal walks it. Every invocation calls it
// (after writing its entry) and gets the result.
fn find_interval(lid: u32, cnt: u32, goal: vec2<u32>, draw: bool, r: vec2<u32>) -> vec3<u32> {
    workgroupBarrier();
    let g = (cnt + 31u) / 32u;
    if (lid < 32u) {
        var s = vec2<u32>(0u, 0u);
        for (var k = 0u; k < g; k++) {
            let e = lid * g + k;
            if (e < cnt) {
                s = u64_add(s, cum[min(e, CAP - 1u)]);
            }
        }
        gs64[lid] = s;
    }
    if (lid == 0u) {
        fint = vec4<u32>(0u, 0u, 0u, 0u);
    }
    workgroupBarrier();
    if (lid < 32u) {
        var pre = vec2<u32>(0u, 0u);
        var tot = vec2<u32>(0u, 0u);
        for (var k = 0u; k < 32u; k++) {
            let v = gs64[k];
            if (k < lid) {
                pre = u64_add(pre, v);
            }
            tot = u64_add(tot, v);
        }
        var u = goal;
        if (draw) {
            u = mulhi64(tot, r);
        }
        if (u64_ge(u, pre) && u64_lt(u, u64_add(pre, gs64[lid]))) {
            var acc = pre;
            for (var k = 0u; k < g; k++) {
                let e = lid * g + k;
                let nx = u64_add(acc, cum[min(e, CAP - 1u)]);
                if (e < cnt && u64_lt(u, nx)) {
                    fint = vec4<u32>(e, u64_sub(u, acc), 0u);
                    break;
                }
                acc = nx;
            }
        }
    }
    return workgroupUniformLoad(&fint).xyz;
}

// The plain draw's token of `row` (step counter `st`).
fn plain_select(row: u32, lid: u32, st: vec2<u32>) -> u32 {
    let r = draw_word(st, row);
    let own = min(SWG, CAP);
    let nh1 = arrayLength(&hist) - 1u;
    // 1. The block: owner t sums blocks [t·qb, (t+1)·qb) (qb = 1 up to CAP blocks).
    let qb = (p.nbs + own - 1u) / own;
    let nb_own = (p.nbs + qb - 1u) / qb;
    if (lid < nb_own) {
        var s = vec2<u32>(0u, 0u);
        for (var k = 0u; k < qb; k++) {
            let b = lid * qb + k;
            if (b < p.nbs) {
                s = u64_add(s, hist[min((row * p.nbs + b) * 256u, nh1)].yz);
            }
        }
        cum[min(lid, CAP - 1u)] = s;
    }
    let f1 = find_interval(lid, nb_own, vec2<u32>(0u, 0u), true, r);
    var blk = min(f1.x * qb, p.nbs - 1u);
    var off = f1.yz;
    for (var k = 0u; k < qb; k++) {
        let b = f1.x * qb + k;
        if (b >= p.nbs) {
            break;
        }
        let w = hist[min((row * p.nbs + b) * 256u, nh1)].yz;
        if (u64_lt(off, w)) {
            blk = b;
            break;
        }
        off = u64_sub(off, w);
    }
    if (DIAG == 5u) {
        return blk;
    }
    // 2. Inside the block's distance words [w0, w0 + nw): owner t sums the
    // weights of words [t·q2, (t+1)·q2).
    let w0 = blk * PW * PWG;
    let nw = min(w0 + PW * PWG, p.ld_d) - min(w0, p.ld_d);
    let q2 = max((nw + own - 1u) / own, 1u);
    let n2 = (nw + q2 - 1u) / q2;
    let nd1 = arrayLength(&dist) - 1u;
    let base = row * p.ld_d + w0;
    if (lid < n2) {
        var s = vec2<u32>(0u, 0u);
        for (var k = 0u; k < q2; k++) {
            let j = lid * q2 + k;
            if (j < nw) {
                s = u64_add(s, word_weight(dist[min(base + j, nd1)]));
            }
        }
        cum[min(lid, CAP - 1u)] = s;
    }
    let f2 = find_interval(lid, n2, off, false, r);
    if (DIAG == 3u) {
        return f2.x;
    }
    // 3. The token among owner f2.x's words (every invocation walks them alike).
    var o = f2.yz;
    var tok = (w0 + f2.x * q2) * 8u;
    for (var k = 0u; k < q2; k++) {
        let j = f2.x * q2 + k;
        if (j >= nw) {
            break;
        }
        let v = dist[min(base + j, nd1)];
        var hit = 8u;
        for (var t = 0u; t < 8u; t++) {
            let w = vec2<u32>(weight(word_d(v, t)), 0u);
            if (u64_lt(o, w)) {
                hit = t;
                break;
            }
            o = u64_sub(o, w);
        }
        if (hit < 8u) {
            tok = (w0 + j) * 8u + hit;
            break;
        }
    }
    return tok;
}

// ---------------------------------------------------------------- local lists

// A local list's status word: the count, or this when the block's candidates
// up to its local top-k bin are more than LCAP.
const LC_OVER: u32 = 0xffffffffu;

// Word w of the local list of block `blk` of `row` in `hist` (after the
// histograms and the max partials): w = 0 the status, then pairs.
fn lc_at(row: u32, blk: u32, w: u32) -> u32 {
    let base = p.rows * p.nbs * 257u + (row * p.nbs + blk) * (1u + LCAP / 2u);
    return min(base + w, arrayLength(&hist) - 1u);
}

var<workgroup> lsel: array<u32, 3>;
var<workgroup> lcnt: atomic<u32>;
// The block's list, gathered before it is written out whole.
const LCAP_MAX: u32 = 256u;
var<workgroup> lk: array<vec2<u32>, LCAP_MAX>;
// A padding entry of a list (no token has this distance).
const LC_NONE: u32 = 0xffffffffu;

// Token i with distance d into the block's list when its bin is ≤ cl and its weight > 0.
fn lc_push(d: u32, i: u32, cl: u32) {
    if ((d >> 8u) <= cl && weight(d) != 0u) {
        let s = atomicAdd(&lcnt, 1u);
        lk[min(s, LCAP_MAX - 1u)] = vec2<u32>(d, i);
    }
}

// Distance t (0..8) of a word of 8 u16 distances.
fn word_d(v: vec4<u32>, t: u32) -> u32 {
    return (v[t / 2u] >> (16u * (t & 1u))) & 0xffffu;
}

fn lc_word(v: vec4<u32>, i0: u32, cl: u32) {
    for (var t = 0u; t < 8u; t++) {
        lc_push(word_d(v, t), i0 + t, cl);
    }
}

// After the block's histogram is complete (and a barrier): its local top-k
// bin cl (the first bin where its candidates reach k; 255 when it has fewer)
// and, when its candidates in bins ≤ cl are at most LCAP, those candidates
// as its list (padded with LC_NONE to LCAP entries). `word0`: this
// invocation's first distance word (the others are read back from `dist`,
// this invocation's own writes).
fn local_list(row: u32, blk: u32, lid: u32, store: bool, word0: vec4<u32>) {
    let k = p.top_k;
    if (lid == 0u) {
        var total = 0u;
        for (var q = 0u; q < 16u; q++) {
            total += atomicLoad(&lgrp[q]);
        }
        lsel[2] = total;
    }
    for (var b = lid; b < 256u; b += PWG) {
        // The count through bin b: whole groups before b's, then b's group
        // up to b (fixed trip counts, so the loads overlap).
        let grp = b / 16u;
        var cum = 0u;
        for (var q = 0u; q < 16u; q++) {
            cum += select(0u, atomicLoad(&lgrp[q]), q < grp);
        }
        for (var r = 0u; r < 16u; r++) {
            cum += select(0u, atomicLoad(&pc[16u * grp + r]), r <= b % 16u);
        }
        if (cum >= k && cum - atomicLoad(&pc[b]) < k) {
            lsel[0] = b;
            lsel[1] = cum;
        }
    }
    // One barrier: (the bin or LC_OVER, the count through it, the total).
    let sel = workgroupUniformLoad(&lsel);
    var cl = 255u;
    var through = sel[2];
    if (sel[0] != LC_OVER) {
        cl = sel[0];
        through = sel[1];
    }
    if (store && lid == 0u) {
        hist[lc_at(row, blk, 0u)] = vec4<u32>(select(LC_OVER, through, through <= LCAP), cl, 0u, 0u);
    }
    if (through > LCAP) {
        return;
    }
    for (var k = 0u; k < PW; k++) {
        let j = (blk * PW + k) * PWG + lid;
        if (j < p.ld_d) {
            let v = own_word(row, j, k, word0);
            lc_word(v, j * 8u, cl);
        }
    }
    workgroupBarrier();
    // The list whole, two entries a word, padded.
    for (var w = lid; w < LCAP / 2u; w += PWG) {
        var a = vec2<u32>(LC_NONE);
        var b = vec2<u32>(LC_NONE);
        if (2u * w < through) {
            a = lk[2u * w];
        }
        if (2u * w + 1u < through) {
            b = lk[2u * w + 1u];
        }
        if (store) {
            hist[lc_at(row, blk, 1u + w)] = vec4<u32>(a, b);
        }
    }
}

// ---------------------------------------------------------------- select

// Coarse (c*) and fine (f*) histograms: counts and weights, then inclusive
// prefix sums in key order (bin 0 = the most probable).
var<workgroup> cc: array<u32, 256>;
var<workgroup> cw: array<vec2<u32>, 256>;
var<workgroup> fc: array<u32, 256>;
var<workgroup> fw: array<vec2<u32>, 256>;
var<workgroup> fine: array<atomic<u32>, 256>;
var<workgroup> first: atomic<u32>;
var<workgroup> slot: u32;
var<workgroup> seg: array<u32, SWG>;
// Fast path: up to CAP collected candidates (distance, index); their weights
// and indices sorted by (distance, index); the weights' sums per chunk of 16
// and their prefix sums.
const CAP: u32 = 512u;
var<workgroup> kd: array<u32, CAP>;
var<workgroup> ki: array<u32, CAP>;
var<workgroup> sw: array<u32, CAP>;
var<workgroup> csum: array<vec2<u32>, CAP / 16u>;
var<workgroup> si: array<u32, CAP>;
var<workgroup> cum: array<vec2<u32>, CAP>;
var<workgroup> ncol: atomic<u32>;
var<workgroup> fs: array<u32, 4>;
var<workgroup> fsel: array<u32, 4>;
var<workgroup> gsum: array<u32, 16>;

// Inclusive scan of (cc, cw) or (fc, fw) over 256 bins (`fine_arrays` picks).
fn scan256(lid: u32, fine_arrays: bool) {
    for (var off = 1u; off < 256u; off = off * 2u) {
        var c = 0u;
        var w = vec2<u32>(0u, 0u);
        let act = lid < 256u && lid >= off;
        if (act) {
            if (fine_arrays) {
                c = fc[lid - off];
                w = fw[lid - off];
            } else {
                c = cc[lid - off];
                w = cw[lid - off];
            }
        }
        workgroupBarrier();
        if (act) {
            if (fine_arrays) {
                fc[lid] += c;
                fw[lid] = u64_add(fw[lid], w);
            } else {
                cc[lid] += c;
                cw[lid] = u64_add(cw[lid], w);
            }
        }
        workgroupBarrier();
    }
}

// The first bin b < limit whose flag is set, or `limit` (uniform result).
// `flag` is this invocation's flag for bin `lid`.
fn first_set(lid: u32, flag: bool, limit: u32) -> u32 {
    if (lid == 0u) {
        atomicStore(&first, limit);
    }
    workgroupBarrier();
    if (lid < limit && flag) {
        atomicMin(&first, lid);
    }
    workgroupBarrier();
    if (lid == 0u) {
        slot = atomicLoad(&first);
    }
    return workgroupUniformLoad(&slot);
}

// Cumulative count / weight before bin b (0 for b = 0).
fn cc_before(b: u32) -> u32 {
    if (b == 0u) {
        return 0u;
    }
    return cc[b - 1u];
}
fn cw_before(b: u32) -> vec2<u32> {
    if (b == 0u) {
        return vec2<u32>(0u, 0u);
    }
    return cw[b - 1u];
}
fn fc_before(b: u32) -> u32 {
    if (b == 0u) {
        return 0u;
    }
    return fc[b - 1u];
}
fn fw_before(b: u32) -> vec2<u32> {
    if (b == 0u) {
        return vec2<u32>(0u, 0u);
    }
    return fw[b - 1u];
}

fn dist_word(row: u32, j: u32) -> vec4<u32> {
    return dist[min(row * p.ld_d + j, arrayLength(&dist) - 1u)];
}


// Fine histogram of coarse bin c: (fc, fw) = per distance c·256 + f, counts
// and count · weight, then scanned. Straight-line per word (no arrays, no
// dynamic indexing: NVIDIA puts those in local memory), four coalesced loads
// in flight.
fn fine1(d: u32, c: u32) {
    if ((d >> 8u) == c && d <= D_LAST) {
        atomicAdd(&fine[d & 255u], 1u);
    }
}

fn fine_word(v: vec4<u32>, c: u32) {
    fine1(v.x & 0xffffu, c);
    fine1(v.x >> 16u, c);
    fine1(v.y & 0xffffu, c);
    fine1(v.y >> 16u, c);
    fine1(v.z & 0xffffu, c);
    fine1(v.z >> 16u, c);
    fine1(v.w & 0xffffu, c);
    fine1(v.w >> 16u, c);
}

fn fine_pass(row: u32, c: u32, lid: u32) {
    for (var f = lid; f < 256u; f += SWG) {
        atomicStore(&fine[f], 0u);
    }
    workgroupBarrier();
    let nd1 = arrayLength(&dist) - 1u;
    let base = row * p.ld_d;
    var j = lid;
    loop {
        if (j + 3u * SWG >= p.ld_d) {
            break;
        }
        let v0 = dist[min(base + j, nd1)];
        let v1 = dist[min(base + j + SWG, nd1)];
        let v2 = dist[min(base + j + 2u * SWG, nd1)];
        let v3 = dist[min(base + j + 3u * SWG, nd1)];
        fine_word(v0, c);
        fine_word(v1, c);
        fine_word(v2, c);
        fine_word(v3, c);
        j += 4u * SWG;
    }
    loop {
        if (j >= p.ld_d) {
            break;
        }
        fine_word(dist[min(base + j, nd1)], c);
        j += SWG;
    }
    workgroupBarrier();
    fine_scan(c, lid);
}

// After `fine` holds bin c's counts (and a barrier): (fc, fw), scanned.
fn fine_scan(c: u32, lid: u32) {
    if (lid < 256u) {
        let n = atomicLoad(&fine[lid]);
        fc[lid] = n;
        fw[lid] = mul32(n, weight(c * 256u + lid));
    }
    workgroupBarrier();
    scan256(lid, true);
}

// How many of a word's 8 distances equal ds.
fn count_eq(v: vec4<u32>, ds: u32) -> u32 {
    return select(0u, 1u, (v.x & 0xffffu) == ds) + select(0u, 1u, (v.x >> 16u) == ds)
        + select(0u, 1u, (v.y & 0xffffu) == ds) + select(0u, 1u, (v.y >> 16u) == ds)
        + select(0u, 1u, (v.z & 0xffffu) == ds) + select(0u, 1u, (v.z >> 16u) == ds)
        + select(0u, 1u, (v.w & 0xffffu) == ds) + select(0u, 1u, (v.w >> 16u) == ds);
}

// The position (0..8) in a word of the (left+1)-th distance equal to ds
// (8 if there are fewer).
fn pos_eq(v: vec4<u32>, ds: u32, left: u32) -> u32 {
    var seen = 0u;
    var at = 8u;
    let d0 = v.x & 0xffffu;
    let d1 = v.x >> 16u;
    let d2 = v.y & 0xffffu;
    let d3 = v.y >> 16u;
    let d4 = v.z & 0xffffu;
    let d5 = v.z >> 16u;
    let d6 = v.w & 0xffffu;
    let d7 = v.w >> 16u;
    if (d0 == ds) { if (seen == left && at == 8u) { at = 0u; } seen += 1u; }
    if (d1 == ds) { if (seen == left && at == 8u) { at = 1u; } seen += 1u; }
    if (d2 == ds) { if (seen == left && at == 8u) { at = 2u; } seen += 1u; }
    if (d3 == ds) { if (seen == left && at == 8u) { at = 3u; } seen += 1u; }
    if (d4 == ds) { if (seen == left && at == 8u) { at = 4u; } seen += 1u; }
    if (d5 == ds) { if (seen == left && at == 8u) { at = 5u; } seen += 1u; }
    if (d6 == ds) { if (seen == left && at == 8u) { at = 6u; } seen += 1u; }
    if (d7 == ds) { if (seen == left && at == 8u) { at = 7u; } seen += 1u; }
    return at;
}

// The index of the r-th (from 0) token of the row with distance ds, in index
// order: each invocation counts its contiguous run of words, an exclusive
// scan over invocations finds the run holding the r-th, and that invocation
// walks its run again.
fn nth_with_distance(row: u32, ds: u32, r: u32, lid: u32) -> u32 {
    let per = (p.ld_d + SWG - 1u) / SWG;
    let j0 = lid * per;
    let j1 = min(j0 + per, p.ld_d);
    var cnt = 0u;
    for (var j = j0; j < j1; j++) {
        cnt += count_eq(dist_word(row, j), ds);
    }
    // Exclusive scan of the counts over invocations.
    seg[lid] = cnt;
    for (var off = 1u; off < SWG; off = off * 2u) {
        workgroupBarrier();
        var add = 0u;
        if (lid >= off) {
            add = seg[lid - off];
        }
        workgroupBarrier();
        seg[lid] += add;
    }
    workgroupBarrier();
    let before = seg[lid] - cnt;
    if (lid == 0u) {
        atomicStore(&first, 0xffffffffu);
    }
    workgroupBarrier();
    if (r >= before && r < before + cnt) {
        var left = r - before;
        var found = 0xffffffffu;
        for (var j = j0; j < j1; j++) {
            let v = dist_word(row, j);
            let c = count_eq(v, ds);
            if (found == 0xffffffffu) {
                if (left < c) {
                    found = j * 8u + pos_eq(v, ds, left);
                } else {
                    left -= c;
                }
            }
        }
        atomicMin(&first, found);
    }
    workgroupBarrier();
    if (lid == 0u) {
        slot = atomicLoad(&first);
    }
    return workgroupUniformLoad(&slot);
}

// A decision every invocation computed alike, made uniform for control flow.
fn uniform_flag(lid: u32, b: bool) -> bool {
    if (lid == 0u) {
        slot = select(0u, 1u, b);
    }
    return workgroupUniformLoad(&slot) != 0u;
}

// ---------------------------------------------------------------- general path over bucket lists

// The exclusive prefix sum of v over invocations 0..256 (two levels through
// `seg` and `gsum`; every invocation calls it; v = 0 past 256).
fn excl256(lid: u32, v: u32) -> u32 {
    workgroupBarrier();
    if (lid < 256u) {
        seg[lid] = v;
    }
    workgroupBarrier();
    if (lid < 16u) {
        var g = 0u;
        for (var r = 0u; r < 16u; r++) {
            g += seg[16u * lid + r];
        }
        gsum[lid] = g;
    }
    workgroupBarrier();
    var e = 0u;
    if (lid < 256u) {
        let grp = lid / 16u;
        for (var q = 0u; q < 16u; q++) {
            e += select(0u, gsum[q], q < grp);
        }
        for (var r = 0u; r < 16u; r++) {
            e += select(0u, seg[16u * grp + r], r < lid % 16u);
        }
    }
    return e;
}

// Coarse bin c of the row's bucket lists (the fast path's arrays are free
// here): per block its count (kd), its start (si) and the entries of the
// blocks before it (sw). Returns the bin's total.
fn bucket_blocks(row: u32, c: u32, lid: u32) -> u32 {
    var n = 0u;
    var s = 0u;
    if (lid < p.nbs) {
        let h = hist[min((row * p.nbs + lid) * 256u + c, arrayLength(&hist) - 1u)];
        n = h.x;
        s = h.w;
    }
    let e = excl256(lid, n);
    if (lid < 256u) {
        kd[lid] = n;
        si[lid] = s;
        sw[lid] = e;
    }
    if (lid == 255u) {
        fs[2] = e + n;
    }
    return workgroupUniformLoad(&fs[2]);
}

// Entry e (below bucket_blocks' total) of the bin: (d mod 256, the token's
// index in the row).
fn bucket_entry(row: u32, e: u32) -> vec2<u32> {
    // The last block whose entries start at or before e (blocks in between
    // may be empty).
    var lo = 0u;
    var hi = clamp(p.nbs, 1u, 256u);
    loop {
        if (hi - lo <= 1u) {
            break;
        }
        let mid = (lo + hi) / 2u;
        if (sw[mid] <= e) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let q = bucket_load(bucket_at(row, lo, si[lo] + e - sw[lo]));
    return vec2<u32>(q >> 24u, lo * PWG * PW * 8u + (q & 0xffffffu));
}

// fine_pass from the bucket lists of bin c.
fn fine_from_buckets(row: u32, c: u32, lid: u32) {
    for (var f = lid; f < 256u; f += SWG) {
        atomicStore(&fine[f], 0u);
    }
    let total = bucket_blocks(row, c, lid);
    for (var e = lid; e < total; e += SWG) {
        atomicAdd(&fine[bucket_entry(row, e).x], 1u);
    }
    workgroupBarrier();
    fine_scan(c, lid);
}

fn fine_of(row: u32, c: u32, lid: u32, bk: bool) {
    if (bk) {
        fine_from_buckets(row, c, lid);
    } else {
        fine_pass(row, c, lid);
    }
}

// nth_with_distance from the bucket lists: the tokens with distance ds
// gathered (when at most CAP, else the pass over the row), each ranked by
// counting the smaller indices. (.x the token, .y 3, or 4 when it fell back.)
fn nth_from_buckets(row: u32, ds: u32, r: u32, lid: u32) -> vec2<u32> {
    if (lid == 0u) {
        atomicStore(&ncol, 0u);
        fs[1] = 0u;
    }
    let total = bucket_blocks(row, ds >> 8u, lid);
    for (var e = lid; e < total; e += SWG) {
        let u = bucket_entry(row, e);
        if (u.x == (ds & 255u)) {
            let s = atomicAdd(&ncol, 1u);
            if (s < CAP) {
                ki[s] = u.y;
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        fs[3] = atomicLoad(&ncol);
    }
    let m = workgroupUniformLoad(&fs[3]);
    if (m > CAP) {
        return vec2<u32>(nth_with_distance(row, ds, r, lid), 4u);
    }
    for (var q = lid; q < m; q += SWG) {
        let iq = ki[q];
        var below = 0u;
        for (var t = 0u; t < m; t++) {
            below += select(0u, 1u, ki[t] < iq);
        }
        if (below == r) {
            fs[1] = iq;
        }
    }
    return vec2<u32>(workgroupUniformLoad(&fs[1]), 3u);
}

fn finish(row: u32, lid: u32, token: u32) {
    if (lid == 0u && row < p.rows) {
        tokens[min(row, arrayLength(&tokens) - 1u)] = token;
        if (AUTO_STEP) {
            let i = min(row, arrayLength(&steps) - 1u);
            steps[i] = u64_add(steps[i], vec2<u32>(1u, 0u));
        }
    }
}

// ceil(W_K · P / 2^24), the top-p goal.
fn top_p_goal(w_k: vec2<u32>) -> vec2<u32> {
    var t3 = mul64x32(w_k, p.p_fixed);
    let lo = t3.x + 0xffffffu;
    let c1 = select(0u, 1u, lo < t3.x);
    let mid = t3.y + c1;
    let c2 = select(0u, 1u, mid < c1);
    t3 = vec3<u32>(lo, mid, t3.z + c2);
    return vec2<u32>((t3.x >> 24u) | (t3.y << 8u), (t3.y >> 24u) | (t3.z << 8u));
}

// The row's random 64-bit word for step `st` (its counter, read by the caller).
fn draw_word(st: vec2<u32>, row: u32) -> vec2<u32> {
    return philox4x32_10(vec4<u32>(st.x, st.y, row, 0u), vec2<u32>(p.seed_lo, p.seed_hi)).xy;
}

// The fast path's draw word, computed by one invocation during the rank count.
var<workgroup> fdraw: vec2<u32>;

// Fast path, one token `d` at index `i`: kept if its coarse bin is ≤ c_k and its weight > 0.
fn collect1(d: u32, i: u32, ck: u32) {
    if ((d >> 8u) <= ck && d <= D_LAST) {
        let s = atomicAdd(&ncol, 1u);
        if (s < CAP) {
            kd[s] = d;
            ki[s] = i;
        }
    }
}

fn collect_word(v: vec4<u32>, i0: u32, ck: u32) {
    for (var t = 0u; t < 8u; t++) {
        collect1(word_d(v, t), i0 + t, ck);
    }
}

// The fast path: every token in bins ≤ c_k (at most CAP of them, so the
// first kk in (d, index) order are among them) collected, ranked by
// counting, their weights prefix-summed; top-k, top-p and the draw are then
// "first j with ..." tests. Exactly the CPU reference's steps 5–8.
fn fast_select(row: u32, ck: u32, kk: u32, lid: u32, st: vec2<u32>, from_lists: bool) -> u32 {
    if (lid == 0u) {
        atomicStore(&ncol, 0u);
    }
    workgroupBarrier();
    let nd1 = arrayLength(&dist) - 1u;
    let base = row * p.ld_d;
    var j = lid;
    if (from_lists) {
        // The blocks' local lists hold every token of the bins ≤ c_k.
        j = p.ld_d;
        for (var e = lid; e < p.nbs * LCAP; e += SWG) {
            let u = lc_entry(row, e);
            if (u.x != 0u) {
                collect1(u.y, u.z, ck);
            }
        }
    }
    loop {
        if (j + 3u * SWG >= p.ld_d) {
            break;
        }
        let v0 = dist[min(base + j, nd1)];
        let v1 = dist[min(base + j + SWG, nd1)];
        let v2 = dist[min(base + j + 2u * SWG, nd1)];
        let v3 = dist[min(base + j + 3u * SWG, nd1)];
        collect_word(v0, 8u * j, ck);
        collect_word(v1, 8u * (j + SWG), ck);
        collect_word(v2, 8u * (j + 2u * SWG), ck);
        collect_word(v3, 8u * (j + 3u * SWG), ck);
        j += 4u * SWG;
    }
    loop {
        if (j >= p.ld_d) {
            break;
        }
        collect_word(dist[min(base + j, nd1)], 8u * j, ck);
        j += SWG;
    }
    workgroupBarrier();
    if (lid == 0u) {
        fs[3] = min(atomicLoad(&ncol), CAP);
    }
    let c = workgroupUniformLoad(&fs[3]);
    if (DIAG == 6u) {
        return c;
    }
    // The draw word (Philox, ~10 dependent multiplies) by the last
    // invocation, which has no candidate to rank unless c = SWG.
    if (lid == SWG - 1u) {
        fdraw = draw_word(st, row);
    }
    // Rank = the number of candidates before this one in (d, index) order,
    // four at a time (the loads overlap); the weight goes straight to its rank.
    for (var q = lid; q < c; q += SWG) {
        let dq = kd[q];
        let iq = ki[q];
        var r = 0u;
        var t = 0u;
        loop {
            if (t + 4u > c) {
                break;
            }
            let d4 = vec4<u32>(kd[t], kd[t + 1u], kd[t + 2u], kd[t + 3u]);
            let i4 = vec4<u32>(ki[t], ki[t + 1u], ki[t + 2u], ki[t + 3u]);
            let before = (d4 < vec4<u32>(dq)) | ((d4 == vec4<u32>(dq)) & (i4 < vec4<u32>(iq)));
            r += dot(select(vec4<u32>(0u), vec4<u32>(1u), before), vec4<u32>(1u));
            t += 4u;
        }
        for (; t < c; t++) {
            let dt = kd[t];
            r += select(0u, 1u, dt < dq || (dt == dq && ki[t] < iq));
        }
        sw[min(r, CAP - 1u)] = weight(dq);
        si[min(r, CAP - 1u)] = iq;
    }
    let kn = max(min(kk, c), 1u);
    workgroupBarrier();
    // Prefix sums of the first kn weights in two levels: sums of 16-weight
    // chunks, then each prefix from the chunks before it and its own chunk
    // (fixed trip counts, so the loads overlap).
    for (var g = lid; g < (kn + 15u) / 16u; g += SWG) {
        var a = vec2<u32>(0u, 0u);
        for (var r = 0u; r < 16u; r++) {
            let q = 16u * g + r;
            a = u64_add(a, vec2<u32>(select(0u, sw[min(q, CAP - 1u)], q < kn), 0u));
        }
        csum[g] = a;
    }
    workgroupBarrier();
    for (var q = lid; q < kn; q += SWG) {
        let g = q / 16u;
        var acc = vec2<u32>(0u, 0u);
        for (var h = 0u; h < CAP / 16u; h++) {
            acc = u64_add(acc, select(vec2<u32>(0u), csum[h], h < g));
        }
        for (var r = 0u; r < 16u; r++) {
            acc = u64_add(acc, vec2<u32>(select(0u, sw[16u * g + r], r <= q % 16u), 0u));
        }
        cum[q] = acc;
    }
    if (lid == 0u) {
        fs[0] = kn - 1u;
        fs[1] = si[0];
    }
    workgroupBarrier();
    // Top-p: the first q whose prefix reaches the goal.
    let goal = top_p_goal(cum[kn - 1u]);
    for (var q = lid; q < kn; q += SWG) {
        if (u64_ge(cum[q], goal) && (q == 0u || u64_lt(cum[q - 1u], goal))) {
            fs[0] = q;
        }
    }
    let jp = min(workgroupUniformLoad(&fs[0]), kn - 1u);
    // The draw U = floor(W · R / 2^64) and the first q with U < prefix.
    let u = mulhi64(cum[jp], fdraw);
    for (var q = lid; q <= jp; q += SWG) {
        if (u64_lt(u, cum[q]) && (q == 0u || u64_ge(u, cum[q - 1u]))) {
            fs[1] = si[q];
        }
    }
    return workgroupUniformLoad(&fs[1]);
}

// From the coarse counts in `cc` (every bin's invocation wrote its own, no
// barrier since): the top-k bin c_k (.x), the number of candidates in bins
// ≤ c_k (.y) and K = min(k, candidates) (.z; k = 0: all). Each bin's count
// through it is `excl256` (two levels) plus its own.
fn top_k_bin(lid: u32) -> vec3<u32> {
    var c = 0u;
    if (lid < 256u) {
        c = cc[lid];
    }
    let cumc = excl256(lid, c) + c;
    if (lid == 255u) {
        fsel[2] = cumc;
    }
    let ncand = workgroupUniformLoad(&fsel[2]);
    var kk = ncand;
    if (p.top_k != 0u) {
        kk = min(p.top_k, ncand);
    }
    if (lid < 256u && cumc >= kk && cumc - cc[lid] < kk) {
        fsel[0] = lid;
        fsel[1] = cumc;
    }
    let f = workgroupUniformLoad(&fsel);
    return vec3<u32>(f[0], f[1], kk);
}

// Local lists of at most this many blocks are read by `select` (longer rows
// take the pass over their distances).
const LC_BLOCKS: u32 = 256u;
var<workgroup> lbad: atomic<u32>;

// Entry e of the row's local lists (block e / LCAP, slot e % LCAP):
// (1, d, index) when the slot holds a candidate, else (0, 0, 0).
fn lc_entry(row: u32, e: u32) -> vec3<u32> {
    let lc = max(LCAP, 2u); // LCAP (no division by zero where it is 0 and unused)
    let b = e / lc;
    let s = e % lc;
    let q = hist[lc_at(row, min(b, p.nbs - 1u), 1u + s / 2u)];
    var u = q.xy;
    if ((s & 1u) != 0u) {
        u = q.zw;
    }
    if (b >= p.nbs || u.x == LC_NONE) {
        return vec3<u32>(0u);
    }
    return vec3<u32>(1u, u.x, u.y);
}

@compute @workgroup_size(SWG)
fn select_token(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = min(wid.x, max(p.rows, 1u) - 1u);
    if (p.greedy != 0u) {
        // Greedy rows are finished by `prepare`.
        return;
    }
    // The step counter and the table first: their loads overlap the
    // histograms' (the draw word is computed late, off the loads' path).
    let st = steps[min(row, arrayLength(&steps) - 1u)];
    load_exp2(lid, SWG);
    if (p.plain != 0u) {
        let t = plain_select(row, lid, st);
        finish(wid.x, lid, select(t, 3u, DIAG == 7u));
        return;
    }
    // The blocks' local lists instead of the row, when every one is complete.
    if (LCAP > 0u && p.top_k != 0u && p.nbs <= LC_BLOCKS) {
        if (lid == 0u) {
            atomicStore(&lbad, 0u);
        }
        if (lid < 256u) {
            atomicStore(&fine[lid], 0u);
        }
        workgroupBarrier();
        // The statuses and the entries at once; the histogram is dropped
        // when a list overflowed.
        if (lid < p.nbs && hist[lc_at(row, lid, 0u)].x > LCAP) {
            atomicStore(&lbad, 1u);
        }
        for (var e = lid; e < p.nbs * LCAP; e += SWG) {
            let u = lc_entry(row, e);
            if (u.x != 0u) {
                atomicAdd(&fine[min(u.y >> 8u, 255u)], 1u);
            }
        }
        workgroupBarrier();
        if (!uniform_flag(lid, atomicLoad(&lbad) != 0u)) {
            // Their coarse histogram (counts only), c_k and the count through it.
            if (lid < 256u) {
                cc[lid] = atomicLoad(&fine[lid]);
            }
            let kb = top_k_bin(lid);
            if (DIAG == 5u) {
                finish(wid.x, lid, kb.x);
                return;
            }
            if (kb.y <= CAP) {
                let t = fast_select(row, kb.x, kb.z, lid, st, true);
                finish(wid.x, lid, select(t, 0u, DIAG == 7u));
                return;
            }
            workgroupBarrier();
        }
    }
    // 1. Coarse histogram of the row.
    let nh = arrayLength(&hist);
    if (lid < 256u) {
        var c = 0u;
        var w = vec2<u32>(0u, 0u);
        for (var b = 0u; b < p.nbs; b++) {
            let h = hist[min((row * p.nbs + b) * 256u + lid, nh - 1u)];
            c += h.x;
            w = u64_add(w, h.yz);
        }
        cc[lid] = c;
        cw[lid] = w;
    }
    let kb = top_k_bin(lid);
    let ck0 = kb.x;
    let through = kb.y;
    let kk0 = kb.z;
    if (DIAG == 5u) {
        finish(wid.x, lid, ck0);
        return;
    }
    if (through <= CAP) {
        let t = fast_select(row, ck0, kk0, lid, st, false);
        finish(wid.x, lid, select(t, 1u, DIAG == 7u));
        return;
    }
    if (DIAG == 7u) {
        finish(wid.x, lid, 2u);
        return;
    }
    // General path.
    let bk = buckets_on();
    scan256(lid, false);
    let ncand = workgroupUniformLoad(&cc[255]);
    var kk = ncand;
    if (p.top_k != 0u) {
        kk = min(p.top_k, ncand);
    }
    // No cut at all (top-p 1 and a top-k at least the candidates but below
    // n; temperature alone takes the plain draw instead): W = the total
    // weight and the draw searches all bins in (d, index) order; the top-k
    // and top-p fine histograms are skipped. Every step below then takes the
    // "below d_p" branch with c_p = 256, exactly the reference's search.
    let everything = (p.top_k == 0u || p.top_k >= ncand) && p.p_fixed >= 0x1000000u;
    var cp = 256u;
    var dp = 0u;
    var wdp = 1u;
    var wp_before = cw[255];
    var w_all = cw[255];
    if (!everything) {
        // 2. Top-k: the bin and the distance d_k where the count reaches K.
        // Without a cut (K = every candidate) W_K is the total weight and
        // c_k stands past the last bin: the fine pass would find the last
        // distance, and the top-p bin below is then always before it.
        var ck = 256u;
        var fk = 256u;
        var w_k = cw[255];
        if (kk < ncand) {
            ck = first_set(lid, lid < 256u && cc[min(lid, 255u)] >= kk, 256u);
            fine_of(row, ck, lid, bk);
            let base_cnt = cc_before(ck);
            fk = first_set(lid, lid < 256u && base_cnt + fc[min(lid, 255u)] >= kk, 256u);
            let dk = ck * 256u + fk;
            let tk = kk - (base_cnt + fc_before(fk));
            let wk_before = u64_add(cw_before(ck), fw_before(fk));
            w_k = u64_add(wk_before, mul32(tk, weight(dk)));
        }
        if (DIAG == 1u) {
            finish(wid.x, lid, ck);
            return;
        }
        // 3. Top-p: goal = ceil(W_K · P / 2^24).
        let goal = top_p_goal(w_k);
        // The bin where the weight reaches the goal: before ck (all of those
        // bins are inside the top-k set), or ck itself.
        cp = first_set(lid, lid < 256u && lid < ck && u64_ge(cw[min(lid, 255u)], goal), ck);
        var fp: u32;
        if (cp < ck) {
            fine_of(row, cp, lid, bk);
            let base_w = cw_before(cp);
            fp = first_set(lid, lid < 256u && u64_ge(u64_add(base_w, fw[min(lid, 255u)]), goal), 256u);
        } else {
            let base_w = cw_before(ck);
            fp = first_set(lid, lid < 256u && lid < fk && u64_ge(u64_add(base_w, fw[min(lid, 255u)]), goal), fk);
        }
        dp = cp * 256u + fp;
        wp_before = u64_add(cw_before(cp), fw_before(fp));
        wdp = weight(dp);
        let need = divmod64x32(u64_sub(goal, wp_before), wdp);
        let tp = need.x + select(0u, 1u, need.z != 0u);
        w_all = u64_add(wp_before, mul32(tp, wdp));
        if (DIAG == 2u) {
            finish(wid.x, lid, dp);
            return;
        }
    }
    // 4. The draw: U = floor(W · R / 2^64).
    let u = mulhi64(w_all, draw_word(st, row));
    var ds = dp;
    var rank = 0u;
    if (uniform_flag(lid, u64_ge(u, wp_before))) {
        rank = divmod64x32(u64_sub(u, wp_before), wdp).x;
    } else {
        // Below d_p: first in the coarse bins before c_p, else inside c_p's fine bins.
        let cs = first_set(lid, lid < 256u && lid < cp && u64_lt(u, cw[min(lid, 255u)]), cp);
        if (cs < cp) {
            fine_of(row, cs, lid, bk);
        }
        let base_w = cw_before(cs);
        let fs = first_set(lid, lid < 256u && u64_lt(u, u64_add(base_w, fw[min(lid, 255u)])), 256u);
        ds = cs * 256u + fs;
        rank = divmod64x32(u64_sub(u, u64_add(base_w, fw_before(fs))), weight(ds)).x;
    }
    if (DIAG == 3u) {
        finish(wid.x, lid, ds);
        return;
    }
    // 5. The token: the rank-th with distance ds, in index order.
    var tok = vec2<u32>(0u, 2u);
    if (bk) {
        tok = nth_from_buckets(row, ds, rank, lid);
    } else {
        tok.x = nth_with_distance(row, ds, rank, lid);
    }
    finish(wid.x, lid, select(tok.x, tok.y, DIAG == 8u));
}
