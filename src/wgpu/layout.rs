//! Tests only: a uniform's Rust struct and its WGSL twin agree field for
//! field. Each kernel's `Params` is written twice, once in Rust (what the
//! host uploads) and once in WGSL (what the shader reads), and nothing but
//! this check ties them: a field added, dropped, moved or retyped on one
//! side only fails here, with naga's layout of the WGSL struct against the
//! Rust offsets, instead of as wrong numbers on a GPU.

use naga::{ScalarKind, TypeInner};

/// A scalar field type of a uniform.
pub(crate) trait Scalar {
    const KIND: ScalarKind;
}
impl Scalar for u32 {
    const KIND: ScalarKind = ScalarKind::Uint;
}
impl Scalar for i32 {
    const KIND: ScalarKind = ScalarKind::Sint;
}
impl Scalar for f32 {
    const KIND: ScalarKind = ScalarKind::Float;
}

/// The scalar kind of the field `f` selects (type inference does the work).
pub(crate) fn kind<S, T: Scalar>(_f: fn(&S) -> &T) -> ScalarKind {
    T::KIND
}

/// `(name, offset, kind)` of the named fields of a Rust struct, in order.
macro_rules! rust_fields {
    ($s:ty: $($f:ident),* $(,)?) => {
        vec![$((
            stringify!($f),
            std::mem::offset_of!($s, $f),
            $crate::wgpu::layout::kind::<$s, _>(|s: &$s| &s.$f),
        )),*]
    };
}
pub(crate) use rust_fields;

/// Check the WGSL struct `name` in `src` against `fields` and the Rust
/// struct's size. Names starting with `_` are padding: their names are not
/// compared, their offsets and kinds are.
pub(crate) fn check_struct(
    src: &str,
    name: &str,
    fields: &[(&str, usize, ScalarKind)],
    size: usize,
) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    let (members, span) = module
        .types
        .iter()
        .find_map(|(_, t)| match (&t.name, &t.inner) {
            (Some(n), TypeInner::Struct { members, span }) if n == name => Some((members, *span)),
            _ => None,
        })
        .ok_or_else(|| format!("no struct {name} in the source"))?;
    // the struct is what the shader's uniform binding holds
    let uniform = module
        .global_variables
        .iter()
        .find(|(_, g)| g.space == naga::AddressSpace::Uniform)
        .map(|(_, g)| module.types[g.ty].name.as_deref() == Some(name));
    if uniform != Some(true) {
        return Err(format!(
            "the source's uniform binding does not hold a {name}"
        ));
    }
    if members.len() != fields.len() || span as usize != size {
        return Err(format!(
            "{name}: WGSL has {} members in {span} bytes, Rust {} fields in {size} bytes",
            members.len(),
            fields.len()
        ));
    }
    for (m, &(f, off, k)) in members.iter().zip(fields) {
        let mname = m.name.as_deref().unwrap_or("");
        let mkind = match module.types[m.ty].inner {
            TypeInner::Scalar(s) if s.width == 4 => Some(s.kind),
            _ => None,
        };
        let pad = mname.starts_with('_') && f.starts_with('_');
        if (!pad && mname != f) || m.offset as usize != off || mkind != Some(k) {
            return Err(format!(
                "{name}.{f}: Rust has it at {off} as {k:?}; WGSL has {mname} at {} as {mkind:?}",
                m.offset
            ));
        }
    }
    Ok(())
}

/// The value of the module-scope `const NAME: u32 = …u;` in `src`.
pub(crate) fn wgsl_const_u32(src: &str, name: &str) -> Result<u32, String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    let (_, c) = module
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))
        .ok_or_else(|| format!("no const {name} in the source"))?;
    match module.global_expressions[c.init] {
        naga::Expression::Literal(naga::Literal::U32(v)) => Ok(v),
        ref e => Err(format!("const {name} is not a u32 literal: {e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Two {
        a: u32,
        b: f32,
    }

    /// The check itself fails on each kind of drift.
    #[test]
    fn check_struct_catches_drift() {
        let fields = rust_fields!(Two: a, b);
        let ok = "struct P { a: u32, b: f32, }\n@group(0) @binding(0) var<uniform> p: P;";
        assert_eq!(check_struct(ok, "P", &fields, 8), Ok(()));
        for bad in [
            "struct P { a: u32, }",
            "struct P { a: u32, b: f32, c: u32, }",
            "struct P { b: f32, a: u32, }",
            "struct P { a: u32, b: u32, }",
            "struct P { a: u32, c: f32, }",
            "struct Q { a: u32, b: f32, }",
        ] {
            let ty = if bad.contains("struct Q") { "Q" } else { "P" };
            let src = format!("{bad}\n@group(0) @binding(0) var<uniform> p: {ty};");
            assert!(check_struct(&src, "P", &fields, 8).is_err(), "{bad}");
        }
        // the right struct, but not the one bound as the uniform
        let unbound = "struct P { a: u32, b: f32, }\nstruct Q { a: u32, }\n@group(0) @binding(0) var<uniform> q: Q;";
        assert!(check_struct(unbound, "P", &fields, 8).is_err());
        assert!(check_struct(ok, "P", &fields, 12).is_err());
        assert_eq!(wgsl_const_u32("const N: u32 = 7u;", "N"), Ok(7));
        assert!(wgsl_const_u32("const N: u32 = 7u;", "M").is_err());
        let _ = Two { a: 0, b: 0.0 }.a;
    }
}
