//! Error type shared by the format reader, the codec and the backends.
//!
//! Every error that comes from a file names the file (where known), the
//! tensor and the field, so a user can tell what is wrong without a debugger.

use std::path::PathBuf;

/// Where in a `.wcodec` file an error was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, where the error came from one.
    pub file: Option<PathBuf>,
    /// The tensor, where the error concerns one.
    pub tensor: Option<String>,
    /// The header field or section, e.g. `planes[0].index.offset` or `tile 17`.
    pub field: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = &self.file {
            parts.push(format!("file {}", p.display()));
        }
        if let Some(t) = &self.tensor {
            parts.push(format!("tensor {t:?}"));
        }
        if let Some(x) = &self.field {
            parts.push(format!("field {x}"));
        }
        if parts.is_empty() {
            write!(f, "<input>")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container is malformed: bad magic, version, header, offsets, shapes.
    #[error("{loc}: {msg}")]
    Format { loc: Location, msg: String },
    /// A coded stream does not decode: underflow, trailing words, bad final state.
    #[error("{loc}: corrupt stream: {msg}")]
    Corrupt { loc: Location, msg: String },
    /// A decoded tensor does not match its stored checksum.
    #[error("{loc}: checksum mismatch (stored {stored:016x}, decoded {actual:016x})")]
    Checksum {
        loc: Location,
        stored: u64,
        actual: u64,
    },
    /// The input is valid but cannot be handled as asked (e.g. a dtype conversion).
    #[error("{loc}: {msg}")]
    Unsupported { loc: Location, msg: String },
    /// An encoder parameter is out of range.
    #[error("invalid parameter: {0}")]
    Param(String),
    /// An I/O error, with the path it concerns.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// A GPU backend error (no adapter, device lost, out of memory, ...).
    #[error("gpu: {0}")]
    Gpu(String),
    /// A CUDA backend error (no driver, a build without the `cuda` feature,
    /// NVRTC, cuBLAS, a launch).
    #[error("cuda: {0}")]
    Cuda(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn format(loc: Location, msg: impl Into<String>) -> Self {
        Error::Format {
            loc,
            msg: msg.into(),
        }
    }
    pub fn corrupt(loc: Location, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            loc,
            msg: msg.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err,
        }
    }
    /// Attach a file path to an error's location if it has none yet.
    pub fn in_file(mut self, path: &std::path::Path) -> Self {
        match &mut self {
            Error::Format { loc, .. }
            | Error::Corrupt { loc, .. }
            | Error::Checksum { loc, .. }
            | Error::Unsupported { loc, .. }
                if loc.file.is_none() =>
            {
                loc.file = Some(path.to_path_buf());
            }
            _ => {}
        }
        self
    }
    /// Attach a tensor name to an error's location if it has none yet.
    pub fn in_tensor(mut self, name: &str) -> Self {
        match &mut self {
            Error::Format { loc, .. }
            | Error::Corrupt { loc, .. }
            | Error::Checksum { loc, .. }
            | Error::Unsupported { loc, .. }
                if loc.tensor.is_none() =>
            {
                loc.tensor = Some(name.to_string());
            }
            _ => {}
        }
        self
    }
}

impl Location {
    pub fn field(field: impl Into<String>) -> Self {
        Location {
            field: Some(field.into()),
            ..Default::default()
        }
    }
    pub fn tensor(name: &str, field: impl Into<String>) -> Self {
        Location {
            tensor: Some(name.to_string()),
            field: Some(field.into()),
            file: None,
        }
    }
}
