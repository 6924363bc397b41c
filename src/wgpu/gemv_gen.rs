//! The GEMV kernels' WGSL, generated per constant combination.
//!
//! One source per (weight format, x format, batch B, rows per group NR,
//! steps loaded ahead U, reduction path, workgroup size, bias): the main
//! loop is straight-line code over scalar and vector variables: no
//! function-local arrays, nothing passed by value, no loop over a constant
//! trip count left for the driver to unroll. (The first GEMV kept its
//! registers in arrays indexed by override-bounded loops; NVIDIA's compiler
//! put them in local memory whenever the body grew, e.g. for f16 unpacking:
//! ~20× slower on the H100.)
//!
//! Layout and work split are those of the first kernel (docs/INFERENCE.md):
//! W rows padded to whole 16-byte steps, `w_stride` vec4<u32> words per row;
//! a workgroup owns RW rows; each group (a subgroup, or TPR invocations
//! reduced in workgroup memory) computes NR rows at a time, its lanes
//! striding over the steps (lane j takes steps j, j + G, ...), each
//! 16-byte load coalesced. The main loop issues the U·NR·WV weight loads of
//! U steps before any is used; a remainder loop takes single steps.
//!
//! Bounds: every load index is clamped into its binding (`min(i, len − 1)`),
//! the step count is capped so that no index wraps, and every loop advances
//! by at least one: the kernels are safe without wgpu's runtime checks.

use std::fmt::Write;

use super::kernels::{ReducePath, WeightDtype};

/// Everything one generated GEMV kernel is specialised on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GemvSpec {
    pub dtype: WeightDtype,
    /// Resolved: `Subgroup` or `Workgroup`.
    pub path: ReducePath,
    pub batch: u32,
    pub nr: u32,
    pub unroll: u32,
    pub wg: u32,
    /// Invocations per group on the workgroup path.
    pub tpr: u32,
    /// Rows per workgroup.
    pub rw: u32,
    pub x_half: bool,
    pub bias: bool,
    /// int8 → f32 by the exponent trick (else unpack4xI8 and a conversion).
    pub i8_magic: bool,
    /// Subgroup path, batch 2/4/8: halving-exchange reduction of the B sums.
    pub xor: bool,
    /// Tensor-core kernel ([`gemv_coop_wgsl`]): f16 W and x only; `nr` is
    /// then 16-row tiles per subgroup, `unroll` 16-column steps per
    /// iteration.
    pub coop: bool,
    /// Coop kernel: the smallest subgroup size (sizes the staging memory).
    pub sg_min: u32,
    /// Epilogue (not the coop kernel): each workgroup also writes, per batch
    /// vector, the maximum of the y values it stored (sanitised as the
    /// sampler does; the lowest row among equals) to binding 6:
    /// `partial[b · part_stride + part_base + workgroup] = (value bits, row)`.
    pub max_partials: bool,
}

impl GemvSpec {
    /// A stable name: the pipeline cache's key (with no override constants).
    pub fn name(&self) -> String {
        if self.coop {
            return format!(
                "gemv_coop_b{}_t{}_u{}_wg{}_rw{}_s{}{}",
                self.batch,
                self.nr,
                self.unroll,
                self.wg,
                self.rw,
                self.sg_min,
                if self.bias { "_bias" } else { "" }
            );
        }
        format!(
            "gemv_{}_{}_b{}_nr{}_u{}_wg{}_t{}_rw{}_x{}{}{}{}{}",
            self.dtype.name(),
            if self.path == ReducePath::Workgroup {
                "wg"
            } else {
                "sg"
            },
            self.batch,
            self.nr,
            self.unroll,
            self.wg,
            self.tpr,
            self.rw,
            if self.x_half { "h" } else { "f" },
            if self.bias { "_bias" } else { "" },
            if self.dtype == WeightDtype::I8 && !self.i8_magic {
                "_cvt"
            } else {
                ""
            },
            if self.xor { "_xor" } else { "" },
            if self.max_partials { "_mx" } else { "" }
        )
    }
}

/// `Params` and `PARAMS` from one field list: the uniform every GEMV
/// kernel declares, as the Rust struct gemv.rs writes and as the WGSL
/// struct the kernels read (`PARAMS`), field for field, all `u32` (the
/// tensor-core kernel reads only the first eight).
macro_rules! gemv_params {
    ($($f:ident),* $(,)?) => {
        /// The GEMV kernels' uniform; its WGSL twin is `PARAMS`.
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct Params {
            $(pub $f: u32,)*
        }

        const PARAMS: &str =
            concat!("struct Params {\n", $("    ", stringify!($f), ": u32,\n",)* "}\n");
    };
}

gemv_params!(
    rows,
    row_base,
    steps,
    w_stride,
    x_stride,
    y_stride,
    groups_x,
    scale_base,
    part_base,
    part_stride,
    groups,
    pad0,
);

/// 16-byte words of W per step.
fn wv(d: WeightDtype) -> u32 {
    match d {
        WeightDtype::F32 => 2,
        _ => 1,
    }
}

/// vec4<f32> pieces per step (elements per step / 4).
fn pieces(d: WeightDtype) -> u32 {
    d.step_elems() as u32 / 4
}

/// The WGSL of one kernel.
pub fn gemv_wgsl(s: &GemvSpec) -> String {
    if s.coop {
        return gemv_coop_wgsl(s);
    }
    let d = s.dtype;
    let (b_n, nr, un) = (s.batch, s.nr, s.unroll);
    let wv = wv(d);
    let k = pieces(d);
    // x words per step: 4 f32 or 8 f16 per word.
    let xw = if s.x_half { k / 2 } else { k };
    let wg_path = s.path == ReducePath::Workgroup;
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "// Generated by src/wgpu/gemv_gen.rs: {}", s.name());
    let _ = writeln!(
        w,
        "
{PARAMS}
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
"
    );
    if s.max_partials {
        emit_max_decls(w, s);
    }
    emit_i8x4(w, s);
    if wg_path {
        let _ = writeln!(w, "var<workgroup> red: array<f32, {}>;\n", s.wg * nr * b_n);
    }
    // Entry point.
    if wg_path {
        let _ = writeln!(
            w,
            "@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let group = lid / {tpr}u;
    let ngroups = {ng}u;
    let lane = lid % {tpr}u;
    let gsize = {tpr}u;",
            wg = s.wg,
            tpr = s.tpr,
            ng = (s.wg / s.tpr).max(1)
        );
    } else {
        let _ = writeln!(
            w,
            "@compute @workgroup_size({wg})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(local_invocation_index) lid: u32,
) {{
    let group = sg_id;
    let ngroups = max(nsg, 1u);
    let lane = sg_lane;
    let gsize = max(sg_size, 1u);",
            wg = s.wg
        );
    }
    let blocks = (s.rw / nr).max(1);
    let _ = writeln!(
        w,
        "    let wg_index = wid.x + wid.y * p.groups_x;{init}
    let nw1 = arrayLength(&w) - 1u;
    let nx1 = arrayLength(&x) - 1u;
    let ny1 = arrayLength(&y) - 1u;
    // Capped so that no step index wraps (rows are < 2^28 steps anyway).
    let steps = min(p.steps, 0x10000000u);
    let last_row = max(p.rows, 1u) - 1u;
    // Blocks of NR rows: {blocks} per workgroup; the same trip count in every invocation.
    let iters = ({blocks}u + ngroups - 1u) / ngroups;
    for (var it = 0u; it < iters; it++) {{
        let blk = group + it * ngroups;
        let live = blk < {blocks}u;
        let row0 = wg_index * {rw}u + blk * {nr}u;",
        rw = s.rw,
        init = if s.max_partials {
            max_init(s)
        } else {
            String::new()
        },
    );
    for r in 0..nr {
        let _ = writeln!(
            w,
            "        let o{r} = min(row0 + {r}u, last_row) * p.w_stride;"
        );
    }
    for r in 0..nr {
        for b in 0..b_n {
            let _ = writeln!(w, "        var a{r}_{b} = 0.0;");
        }
    }
    let _ = writeln!(w, "        var j = lane;");
    // Main loop: U steps, all in range.
    if un > 1 {
        let _ = writeln!(
            w,
            "        let span = {}u * gsize;
        loop {{
            if (j + span - gsize >= steps) {{
                break;
            }}",
            un
        );
        emit_steps(w, s, un, wv, k, xw, "            ");
        let _ = writeln!(w, "            j += span;\n        }}");
    }
    // Remainder: single steps.
    let _ = writeln!(
        w,
        "        loop {{
            if (j >= steps) {{
                break;
            }}"
    );
    emit_steps(w, s, 1, wv, k, xw, "            ");
    let _ = writeln!(w, "            j += gsize;\n        }}");
    // Reduction.
    if wg_path {
        let _ = writeln!(w, "        let me = group * {}u + lane;", s.tpr);
        for r in 0..nr {
            for b in 0..b_n {
                let _ = writeln!(w, "        red[{}u + me] = a{r}_{b};", (r * b_n + b) * s.wg);
            }
        }
        let _ = writeln!(
            w,
            "        for (var sh = {}u; sh > 0u; sh = sh / 2u) {{
            workgroupBarrier();
            if (lane < sh) {{",
            s.tpr / 2
        );
        for r in 0..nr {
            for b in 0..b_n {
                let base = (r * b_n + b) * s.wg;
                let _ = writeln!(
                    w,
                    "                red[{base}u + me] += red[{base}u + me + sh];"
                );
            }
        }
        let _ = writeln!(w, "            }}\n        }}\n        workgroupBarrier();");
        for r in 0..nr {
            for b in 0..b_n {
                let _ = writeln!(w, "        a{r}_{b} = red[{}u + me];", (r * b_n + b) * s.wg);
            }
        }
        let _ = writeln!(w, "        workgroupBarrier();");
    } else if s.xor {
        emit_xor_reduce(w, s);
        emit_max_epilogue(w, s);
        let _ = writeln!(w, "}}");
        return o;
    } else {
        for r in 0..nr {
            for b in 0..b_n {
                let _ = writeln!(w, "        a{r}_{b} = subgroupAdd(a{r}_{b});");
            }
        }
    }
    // Store.
    let _ = writeln!(w, "        if (lane == 0u && live) {{");
    for r in 0..nr {
        let _ = writeln!(
            w,
            "            if (row0 + {r}u < p.rows) {{
                let si = p.scale_base + row0 + {r}u;"
        );
        emit_scale_bias(w, s);
        for b in 0..b_n {
            let _ = writeln!(
                w,
                "                let v{b} = a{r}_{b} * sc + ad;
                y[min({b}u * p.y_stride + p.row_base + row0 + {r}u, ny1)] = v{b};"
            );
            if s.max_partials {
                let _ = writeln!(
                    w,
                    "                {{
                    let k = max_key(v{b});
                    let i = p.row_base + row0 + {r}u;
                    if (k > mk{b} || (k == mk{b} && i < mi{b})) {{
                        mk{b} = k;
                        mi{b} = i;
                    }}
                }}"
                );
            }
        }
        let _ = writeln!(w, "            }}");
    }
    let _ = writeln!(w, "        }}\n    }}");
    emit_max_epilogue(w, s);
    let _ = writeln!(w, "}}");
    o
}

/// A stored row's scale `sc` (int8: its per-row scale, else 1) and bias
/// `ad` (0 without one), from the row's index `si`.
fn emit_scale_bias(w: &mut String, s: &GemvSpec) {
    if s.dtype == WeightDtype::I8 {
        let _ = writeln!(
            w,
            "                let sc = scales[min(si, arrayLength(&scales) - 1u)];"
        );
    } else {
        let _ = writeln!(w, "                let sc = 1.0;");
    }
    if s.bias {
        let _ = writeln!(
            w,
            "                let ad = bias[min(si, arrayLength(&bias) - 1u)];"
        );
    } else {
        let _ = writeln!(w, "                let ad = 0.0;");
    }
}

/// The int8 unpacking function (int8 weights only).
fn emit_i8x4(w: &mut String, s: &GemvSpec) {
    if s.dtype != WeightDtype::I8 {
        return;
    }
    if s.i8_magic {
        let _ = writeln!(
            w,
            "// Four int8 as f32, exactly: bitcast(0x4B000000 | (q + 128)) − (2^23 + 128).
fn i8x4(u: u32) -> vec4<f32> {{
    let b = u ^ 0x80808080u;
    let m = vec4<u32>(b & 0xffu, (b >> 8u) & 0xffu, (b >> 16u) & 0xffu, b >> 24u) | vec4<u32>(0x4B000000u);
    return bitcast<vec4<f32>>(m) - vec4<f32>(8388736.0);
}}
"
        );
    } else {
        let _ = writeln!(
            w,
            "fn i8x4(u: u32) -> vec4<f32> {{
    return vec4<f32>(unpack4xI8(u));
}}
"
        );
    }
}

/// The weights of one 16-byte-word step as `vec4<f32>` pieces
/// `w{r}_{t}`, from the loaded words `{src}_{v}`.
fn emit_unpack(w: &mut String, d: WeightDtype, r: u32, src: &str, ind: &str) {
    match d {
        WeightDtype::F32 => {
            for v in 0..wv(d) {
                let _ = writeln!(w, "{ind}let w{r}_{v} = bitcast<vec4<f32>>({src}_{v});");
            }
        }
        WeightDtype::F16 => {
            let _ = writeln!(
                w,
                "{ind}let w{r}_0 = vec4<f32>(unpack2x16float({src}_0.x), unpack2x16float({src}_0.y));
{ind}let w{r}_1 = vec4<f32>(unpack2x16float({src}_0.z), unpack2x16float({src}_0.w));"
            );
        }
        WeightDtype::I8 => {
            for (t, c) in ["x", "y", "z", "w"].iter().enumerate() {
                let _ = writeln!(w, "{ind}let w{r}_{t} = i8x4({src}_0.{c});");
            }
        }
    }
}

/// Halving exchanges over `vals` (a power of two of them, every lane
/// running every shuffle; needs subgroups of at least `vals.len()` lanes):
/// at level h (offset G >> (h+1)) a lane with that offset bit set keeps the
/// upper half of its remaining values and sends the lower half to its
/// partner, which does the opposite, and both add what they receive. After
/// log2 n levels each lane holds one value's partial sum over G / n lanes;
/// plain xor shuffles finish it into `v{tag}`. Lane L then holds the total
/// of value `Σ_h bit_h(L) · n >> (h+1)` ([`halving_index`]); the lanes with
/// no bit below G / n set ([`halving_mine`]) are the ones to keep it.
fn emit_halving(w: &mut String, tag: &str, vals: &[String], ind: &str) {
    let levels = vals.len().trailing_zeros();
    let mut cur: Vec<String> = vals.to_vec();
    for h in 0..levels {
        let half = cur.len() / 2;
        let sh = h + 1;
        let _ = writeln!(w, "{ind}let up{tag}_{h} = (lane & (gsize >> {sh}u)) != 0u;");
        let mut next = Vec::new();
        for i in 0..half {
            let (lo, hi) = (&cur[i], &cur[i + half]);
            let name = format!("h{tag}_{h}_{i}");
            let _ = writeln!(
                w,
                "{ind}let {name} = select({lo}, {hi}, up{tag}_{h}) + subgroupShuffleXor(select({hi}, {lo}, up{tag}_{h}), gsize >> {sh}u);"
            );
            next.push(name);
        }
        cur = next;
    }
    let _ = writeln!(
        w,
        "{ind}v{tag} = {};
{ind}for (var off = gsize >> {sh}u; off > 0u; off = off >> 1u) {{
{ind}    v{tag} += subgroupShuffleXor(v{tag}, off);
{ind}}}",
        cur[0],
        sh = levels + 1
    );
}

/// The value index lane `lane` holds after [`emit_halving`] over `n` values.
fn halving_index(n: u32) -> String {
    let mut e = String::from("0u");
    for h in 0..n.trailing_zeros() {
        let _ = write!(
            e,
            " + select(0u, {}u, (lane & (gsize >> {}u)) != 0u)",
            n >> (h + 1),
            h + 1
        );
    }
    e
}

/// Whether lane `lane` keeps its total after [`emit_halving`] over `n` values.
fn halving_mine(n: u32) -> String {
    format!("(lane & ((gsize >> {}u) - 1u)) == 0u", n.trailing_zeros())
}

/// Max-partials epilogue: the workgroup-memory slots, the order-preserving
/// key and its inverse.
fn emit_max_decls(w: &mut String, s: &GemvSpec) {
    let _ = writeln!(
        w,
        "@group(0) @binding(6) var<storage, read_write> partial: array<vec2<u32>>;

// Per batch vector: the workgroup's best key (atomicMax), then the lowest row
// holding it (atomicMin).
var<workgroup> xk: array<atomic<u32>, {b}>;
var<workgroup> xi: array<atomic<u32>, {b}>;

// The sampler's sanitised value (NaN -> -f32 max, +-inf clamped; -0 as +0,
// which compares equal) as a u32 whose unsigned order is the float order:
// every value maps to at least 0x00800000 (-f32 max), so 0 means none.
fn max_key(v: f32) -> u32 {{
    let b = bitcast<u32>(v);
    var c = v;
    if ((b & 0x7fffffffu) > 0x7f800000u) {{
        c = -3.40282347e+38;
    }}
    c = clamp(c, -3.40282347e+38, 3.40282347e+38);
    var u = bitcast<u32>(c);
    if ((u & 0x7fffffffu) == 0u) {{
        u = 0u;
    }}
    return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}}

fn max_value(k: u32) -> u32 {{
    if (k == 0u) {{
        return 0xff7fffffu;
    }}
    return select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u);
}}
",
        b = s.batch
    );
}

/// Start of `main` (max partials): the slots' initial values and this
/// invocation's best (key, row) per batch vector (scalars: no private arrays).
fn max_init(s: &GemvSpec) -> String {
    let mut t = format!(
        "
    if (lid < {b}u) {{
        atomicStore(&xk[lid], 0u);
        atomicStore(&xi[lid], 0xffffffffu);
    }}",
        b = s.batch
    );
    if s.xor {
        t.push_str(
            "
    var mk = 0u;
    var mi = 0xffffffffu;
    var mb = 0u;",
        );
    } else {
        for b in 0..s.batch {
            let _ = write!(
                t,
                "
    var mk{b} = 0u;
    var mi{b} = 0xffffffffu;"
            );
        }
    }
    t
}

/// End of `main` (max partials; workgroup-uniform control flow): every
/// invocation's best into the slots, then one partial per batch vector.
fn emit_max_epilogue(w: &mut String, s: &GemvSpec) {
    if !s.max_partials {
        return;
    }
    let _ = writeln!(w, "    workgroupBarrier();");
    if s.xor {
        let _ = writeln!(
            w,
            "    if (mk != 0u) {{
        atomicMax(&xk[min(mb, {b1}u)], mk);
    }}
    workgroupBarrier();
    if (mk != 0u && mk == atomicLoad(&xk[min(mb, {b1}u)])) {{
        atomicMin(&xi[min(mb, {b1}u)], mi);
    }}",
            b1 = s.batch - 1
        );
    } else {
        for b in 0..s.batch {
            let _ = writeln!(
                w,
                "    if (mk{b} != 0u) {{
        atomicMax(&xk[{b}u], mk{b});
    }}"
            );
        }
        let _ = writeln!(w, "    workgroupBarrier();");
        for b in 0..s.batch {
            let _ = writeln!(
                w,
                "    if (mk{b} != 0u && mk{b} == atomicLoad(&xk[{b}u])) {{
        atomicMin(&xi[{b}u], mi{b});
    }}"
            );
        }
    }
    let _ = writeln!(
        w,
        "    workgroupBarrier();
    if (lid < {b}u && wg_index < p.groups) {{
        partial[min(lid * p.part_stride + p.part_base + wg_index, arrayLength(&partial) - 1u)] =
            vec2<u32>(max_value(atomicLoad(&xk[lid])), atomicLoad(&xi[lid]));
    }}",
        b = s.batch
    );
}

/// The halving-exchange reduction ([`emit_halving`], per row over its B
/// sums) and the store (subgroup path, B = 2, 4 or 8, subgroups of G ≥ B
/// lanes; smaller subgroups take `subgroupAdd`).
fn emit_xor_reduce(w: &mut String, s: &GemvSpec) {
    let (b_n, nr) = (s.batch, s.nr);
    let _ = writeln!(
        w,
        "        var bidx = 0u;
        var mine = false;"
    );
    for r in 0..nr {
        let _ = writeln!(w, "        var v{r} = 0.0;");
    }
    let _ = writeln!(w, "        if (gsize >= {b_n}u) {{");
    for r in 0..nr {
        let vals: Vec<String> = (0..b_n).map(|b| format!("a{r}_{b}")).collect();
        emit_halving(w, &r.to_string(), &vals, "            ");
    }
    let _ = writeln!(
        w,
        "            bidx = {};
            mine = {};
        }} else {{",
        halving_index(b_n),
        halving_mine(b_n)
    );
    for r in 0..nr {
        for b in 0..b_n {
            let _ = writeln!(w, "            let s{r}_{b} = subgroupAdd(a{r}_{b});");
        }
        let mut e = format!("s{r}_0");
        for b in 1..b_n {
            e = format!("select({e}, s{r}_{b}, lane == {b}u)");
        }
        let _ = writeln!(w, "            v{r} = {e};");
    }
    let _ = writeln!(
        w,
        "            bidx = lane;
            mine = lane < {b_n}u;
        }}
        if (mine && live) {{"
    );
    for r in 0..nr {
        let _ = writeln!(
            w,
            "            if (row0 + {r}u < p.rows) {{
                let si = p.scale_base + row0 + {r}u;"
        );
        emit_scale_bias(w, s);
        let _ = writeln!(
            w,
            "                let yo{r} = v{r} * sc + ad;
                y[min(bidx * p.y_stride + p.row_base + row0 + {r}u, ny1)] = yo{r};"
        );
        if s.max_partials {
            let _ = writeln!(
                w,
                "                let k{r} = max_key(yo{r});
                let i{r} = p.row_base + row0 + {r}u;
                if (k{r} > mk || (k{r} == mk && i{r} < mi)) {{
                    mk = k{r};
                    mi = i{r};
                }}
                mb = bidx;"
            );
        }
        let _ = writeln!(w, "            }}");
    }
    let _ = writeln!(w, "        }}\n    }}");
}

/// `n` steps j, j + gsize, ...: all weight loads first, then per step the x
/// vectors and the products.
fn emit_steps(w: &mut String, s: &GemvSpec, n: u32, wv: u32, k: u32, xw: u32, ind: &str) {
    let d = s.dtype;
    for u in 0..n {
        if u == 0 {
            let _ = writeln!(w, "{ind}let j0 = j;");
        } else {
            let _ = writeln!(w, "{ind}let j{u} = j + {u}u * gsize;");
        }
    }
    for u in 0..n {
        for r in 0..s.nr {
            for v in 0..wv {
                let _ = writeln!(
                    w,
                    "{ind}let r{u}_{r}_{v} = w[min(o{r} + j{u} * {wv}u + {v}u, nw1)];"
                );
            }
        }
    }
    for u in 0..n {
        let _ = writeln!(w, "{ind}{{");
        // Weights of this step as vec4<f32> pieces.
        for r in 0..s.nr {
            emit_unpack(w, d, r, &format!("r{u}_{r}"), &format!("{ind}    "));
        }
        for b in 0..s.batch {
            let _ = writeln!(w, "{ind}    {{");
            let xbase = format!("{b}u * p.x_stride + j{u} * {xw}u");
            if s.x_half {
                for t in 0..xw {
                    let _ = writeln!(
                        w,
                        "{ind}        let xr{t} = x[min({xbase} + {t}u, nx1)];
{ind}        let x{a} = vec4<f32>(unpack2x16float(xr{t}.x), unpack2x16float(xr{t}.y));
{ind}        let x{c} = vec4<f32>(unpack2x16float(xr{t}.z), unpack2x16float(xr{t}.w));",
                        a = 2 * t,
                        c = 2 * t + 1
                    );
                }
            } else {
                for t in 0..xw {
                    let _ = writeln!(
                        w,
                        "{ind}        let x{t} = bitcast<vec4<f32>>(x[min({xbase} + {t}u, nx1)]);"
                    );
                }
            }
            for r in 0..s.nr {
                // Batches of 2 and more: each product goes into the
                // accumulator by one fma (4k instructions per row and
                // vector); `acc += dot + dot` costs 4k + 2 (a multiply, the
                // fmas, the adds), and with 8 vectors the kernel is bound by
                // instruction issue. H100, 50257×2560 f16 (run 39): batch 8
                // 106.5-106.8 µs against 111.7-113.0, batch 4 96.3 against
                // 98.3-98.6, batch 2 90.6-90.7 against 91.8-91.9. Batch 1 is
                // memory-bound and keeps the dot form (f32 172.4 µs against
                // 174.2 with the chain, f16 89.7 against 89.8). Either order
                // is within the tolerance of docs/INFERENCE.md (Higham's
                // bound holds for any order of the sum).
                if s.batch >= 2 {
                    for t in 0..k {
                        for c in ["x", "y", "z", "w"] {
                            let _ = writeln!(
                                w,
                                "{ind}        a{r}_{b} = fma(w{r}_{t}.{c}, x{t}.{c}, a{r}_{b});"
                            );
                        }
                    }
                } else {
                    let terms: Vec<String> =
                        (0..k).map(|t| format!("dot(w{r}_{t}, x{t})")).collect();
                    let _ = writeln!(w, "{ind}        a{r}_{b} += {};", terms.join(" + "));
                }
            }
            let _ = writeln!(w, "{ind}    }}");
        }
        let _ = writeln!(w, "{ind}}}");
    }
}

/// Bytes of workgroup memory the coop kernel stages its tiles in.
pub fn coop_stage_bytes(s: &GemvSpec) -> u32 {
    coop_slots(s) * s.nr * 256 * 4
}

/// Subgroups a coop workgroup may have (one staging slot each).
fn coop_slots(s: &GemvSpec) -> u32 {
    (s.wg / s.sg_min.max(1)).max(1)
}

/// The tensor-core GEMV (cooperative matrices, f16 W and x, f32 accumulation).
///
/// `C(16 rows × 16 vectors) += A(16 rows × 16 columns of W) · B(16 columns ×
/// 16 vectors of x)`: A is loaded row-major straight from W (`ld` f16 per
/// row), B column-major from x (`x_stride` f16 per vector; the host
/// allocates 16 vectors, those past the batch zero). A subgroup owns NT
/// tiles of 16 rows and walks K in steps of 16 columns, U steps per
/// iteration (all loads first, then the multiply-adds). The host pads `ld`
/// to whole 16s (zero columns) and needs at least 16 rows per W binding;
/// the last tile of a binding is moved back to end at its last row (rows
/// written only once: each tile writes rows from its nominal start on). The
/// tiles are staged in workgroup memory; each subgroup then writes its
/// `16 × batch` results (+ bias) to y.
///
/// Every coop operation runs in workgroup-uniform control flow (naga's
/// rule): subgroups past the workgroup's row blocks compute a clamped
/// duplicate and write nothing. Bounds: the kernel returns at once (a
/// uniform branch) unless `ld` is a multiple of 16, the W binding holds
/// 16 rows, and x holds 16 vectors of `x_stride ≥ ld`; every tile start is
/// clamped so that its 16 rows lie inside W, and y and bias indices are
/// clamped like the other GEMV kernels'.
pub fn gemv_coop_wgsl(s: &GemvSpec) -> String {
    let (b_n, nt, un) = (s.batch.clamp(1, 16), s.nr.max(1), s.unroll.max(1));
    let slots = coop_slots(s);
    let blocks = (s.rw / (16 * nt)).max(1);
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "// Generated by src/wgpu/gemv_gen.rs: {}", s.name());
    let _ = writeln!(
        w,
        "enable f16;
enable wgpu_cooperative_matrix;

{PARAMS}
@group(0) @binding(0) var<storage, read> w: array<f16>;
@group(0) @binding(1) var<storage, read> x: array<f16>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// 16×16 f32 result tiles, column-major (row m of vector n at n·16 + m):
// {nt} per subgroup, {slots} subgroups at most.
var<workgroup> stage: array<f32, {stage}>;

@compute @workgroup_size({wg})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
) {{
    let ld = p.w_stride;
    let xld = p.x_stride;
    let rows = min(p.rows, arrayLength(&w) / max(ld, 1u));
    // `|`, not `||`: naga lowers a short-circuit to a local variable, which
    // its uniformity analysis cannot follow.
    if ((ld < 16u) | (ld % 16u != 0u) | (rows < 16u) | (xld < ld) | (arrayLength(&x) / 16u < xld)) {{
        return;
    }}
    let kend = min(p.steps, ld / 16u) * 16u;
    let last = rows - 16u;
    let wg_index = wid.x + wid.y * p.groups_x;
    let blk = sg_id;
    let live = blk < {blocks}u;
    let slot = min(sg_id, {slots_1}u) * {tile_words}u;",
        nt = nt,
        slots = slots,
        stage = slots * nt * 256,
        wg = s.wg,
        blocks = blocks,
        slots_1 = slots - 1,
        tile_words = nt * 256,
    );
    for t in 0..nt {
        let _ = writeln!(
            w,
            "    // Tile {t}: nominal first row s{t}, loaded from a{t} (≤ the last whole tile).
    let s{t} = wg_index * {rw}u + min(blk, {blocks_1}u) * {bs}u + {off}u;
    let a{t} = min(s{t}, last);
    let o{t} = a{t} * ld;
    var c{t} = coop_mat16x16<f32, C>();",
            rw = s.rw,
            blocks_1 = blocks - 1,
            bs = 16 * nt,
            off = 16 * t,
        );
    }
    let emit = |w: &mut String, n: u32| {
        for u in 0..n {
            for t in 0..nt {
                let _ = writeln!(
                    w,
                    "        let a{t}_{u} = coopLoadT<coop_mat16x16<f16, A>>(&w[o{t} + k + {}u], ld);",
                    16 * u
                );
            }
        }
        for u in 0..n {
            let _ = writeln!(
                w,
                "        let b{u} = coopLoad<coop_mat16x16<f16, B>>(&x[k + {}u], xld);",
                16 * u
            );
        }
        for u in 0..n {
            for t in 0..nt {
                let _ = writeln!(w, "        c{t} = coopMultiplyAdd(a{t}_{u}, b{u}, c{t});");
            }
        }
    };
    let _ = writeln!(w, "    var k = 0u;");
    if un > 1 {
        let _ = writeln!(
            w,
            "    loop {{
        if (k + {span}u > kend) {{
            break;
        }}",
            span = 16 * un
        );
        emit(w, un);
        let _ = writeln!(w, "        k += {}u;\n    }}", 16 * un);
    }
    let _ = writeln!(
        w,
        "    loop {{
        if (k + 16u > kend) {{
            break;
        }}"
    );
    emit(w, 1);
    let _ = writeln!(w, "        k += 16u;\n    }}");
    for t in 0..nt {
        let _ = writeln!(w, "    coopStore(c{t}, &stage[slot + {}u], 16u);", 256 * t);
    }
    let _ = writeln!(
        w,
        "    workgroupBarrier();
    if (!live) {{
        return;
    }}
    let ny1 = arrayLength(&y) - 1u;
    let gsize = max(sg_size, 1u);
    for (var i = sg_lane; i < {n}u; i += gsize) {{
        let n = i / 16u;
        let m = i % 16u;",
        n = 16 * b_n
    );
    for t in 0..nt {
        let _ = writeln!(
            w,
            "        {{
            let r = a{t} + m;
            if (r >= s{t} && r < rows) {{"
        );
        if s.bias {
            let _ = writeln!(
                w,
                "                let ad = bias[min(p.scale_base + r, arrayLength(&bias) - 1u)];"
            );
        } else {
            let _ = writeln!(w, "                let ad = 0.0;");
        }
        let _ = writeln!(
            w,
            "                y[min(n * p.y_stride + p.row_base + r, ny1)] = stage[slot + {}u + i] + ad;
            }}
        }}",
            256 * t
        );
    }
    let _ = writeln!(w, "    }}\n}}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of 2 and more accumulate by fma chains, batch 1 by dot
    /// products (the forms measured fastest on the H100, see `emit_steps`).
    #[test]
    fn multiply_add_form_follows_the_batch() {
        for dtype in [WeightDtype::F16, WeightDtype::F32, WeightDtype::I8] {
            for batch in 1..=8u32 {
                let t =
                    crate::wgpu::gemv::GemvTuning::candidates(dtype, batch, ReducePath::Subgroup)
                        [0];
                let src = gemv_wgsl(&t.spec(
                    dtype,
                    ReducePath::Subgroup,
                    batch,
                    true,
                    batch % 2 == 1,
                    32,
                ));
                assert_eq!(
                    src.contains("= fma("),
                    batch >= 2,
                    "{dtype:?} batch {batch}"
                );
                assert_eq!(src.contains("dot("), batch == 1, "{dtype:?} batch {batch}");
            }
        }
    }

    #[test]
    fn print_one() {
        if let Ok(v) = std::env::var("WCODEC_PRINT_GEMV") {
            let env = |name: &str, default: u32| {
                std::env::var(name)
                    .ok()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(default)
            };
            let s = GemvSpec {
                dtype: WeightDtype::parse(&v).unwrap(),
                path: ReducePath::Subgroup,
                batch: env("WCODEC_PRINT_BATCH", 1),
                nr: 2,
                unroll: env("WCODEC_PRINT_UNROLL", 2),
                wg: env("WCODEC_PRINT_WG", 256),
                tpr: 0,
                rw: 16,
                x_half: true,
                bias: false,
                i8_magic: true,
                xor: std::env::var("WCODEC_PRINT_XOR").is_ok(),
                coop: false,
                sg_min: 0,
                max_partials: std::env::var("WCODEC_PRINT_MX").is_ok(),
            };
            println!("{}", gemv_wgsl(&s));
        }
        if std::env::var("WCODEC_PRINT_COOP").is_ok() {
            let t = crate::wgpu::gemv::GemvTuning::coop_candidates()[3];
            println!("{}", gemv_wgsl(&t.coop_spec(3, true, 32, 32)));
        }
    }
}
