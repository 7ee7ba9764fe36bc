//! Parsing `--data SPEC`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{DataError, Toy2d};

/// What to train on: a built-in 2-D generator, `csv:PATH`, `idx:PATH` (MNIST-format images, gzipped
/// or not) or `images:DIR` (a folder of same-sized PNG/JPEG images).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataSpec {
    Toy(Toy2d),
    Csv(PathBuf),
    Idx(PathBuf),
    Images(PathBuf),
}

impl FromStr for DataSpec {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        type Make = fn(PathBuf) -> DataSpec;
        let prefixed: [(&str, Make); 3] = [
            ("csv:", DataSpec::Csv),
            ("idx:", DataSpec::Idx),
            ("images:", DataSpec::Images),
        ];
        for (prefix, make) in prefixed {
            if let Some(path) = s.strip_prefix(prefix) {
                if path.is_empty() {
                    return Err(DataError::UnknownSpec(s.into()));
                }
                return Ok(make(PathBuf::from(path)));
            }
        }
        Toy2d::from_name(s)
            .map(DataSpec::Toy)
            .ok_or_else(|| DataError::UnknownSpec(s.into()))
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Toy(t) => write!(f, "{}", t.name()),
            DataSpec::Csv(p) => write!(f, "csv:{}", p.display()),
            DataSpec::Idx(p) => write!(f, "idx:{}", p.display()),
            DataSpec::Images(p) => write!(f, "images:{}", p.display()),
        }
    }
}

impl From<DataSpec> for String {
    fn from(d: DataSpec) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DataSpec {
    type Error = DataError;
    fn try_from(s: String) -> Result<Self, DataError> {
        s.parse()
    }
}
