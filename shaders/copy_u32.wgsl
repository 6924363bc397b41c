// Bandwidth probe: copy `n` vec4<u32> from `src` to `dst` (grid-stride loop).
// The device copy bandwidth that decode speed is quoted against.
//
// Bindings: 0 src (read), 1 dst (read_write), 2 params: [n_vec4, 0, 0, 0].

override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> params: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = min(params[0], min(arrayLength(&src), arrayLength(&dst)));
    let stride = nwg.x * WG;
    for (var i = gid.x; i < n; i += stride) {
        dst[i] = src[i];
    }
}
