//! Atomic output: write to a temporary file beside the target, then rename.
//!
//! A failure part-way (a full disk, a killed process) leaves the target as it
//! was; the temporary file is removed on error.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Refuse to write `out` if it is the same file as `input`.
pub fn refuse_overwrite(input: &Path, out: &Path) -> Result<()> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(out)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::Param(format!(
            "output {} is the input file; refusing to overwrite it",
            out.display()
        )));
    }
    Ok(())
}

/// Write `path` atomically; `body` writes the contents.
pub fn write_atomic(path: &Path, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", path.file_name().and_then(|n| n.to_str()).unwrap_or("out")))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        body(&mut w)?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
