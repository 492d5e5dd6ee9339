//! Config errors: each names the file, the line and column when known, and the key path.

use std::fmt;

use super::yaml::Origin;

/// Everything wrong with a config file (at least one problem). `Display` prints one
/// problem per line, compiler-style:
/// `config.yaml:12:5: routes[2]: unknown key `polcy`; expected one of from, to, ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

/// One thing wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name as given (or the `origin` passed to `Config::parse`).
    pub file: String,
    /// 1-based line and column, when the YAML parser placed the value.
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Set when the value came from this environment variable instead of the file.
    pub env: Option<String>,
    /// The key path, such as `routes[2].policy[0].allow.and[1]`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn single(file: &str, origin: &Origin, path: &str, message: String) -> Self {
        ConfigError {
            problems: vec![Problem::new(file, origin, path, message)],
        }
    }
}

impl Problem {
    pub(crate) fn new(file: &str, origin: &Origin, path: &str, message: String) -> Problem {
        let (line, column, env) = match origin {
            Origin::File { line, column } => (Some(*line), Some(*column), None),
            Origin::Env(var) => (None, None, Some(var.clone())),
            Origin::Unknown => (None, None, None),
        };
        Problem {
            file: file.to_string(),
            line,
            column,
            env,
            path: path.to_string(),
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env, self.line, self.column) {
            (Some(var), _, _) => write!(f, "environment variable {var}")?,
            (None, Some(line), Some(column)) => write!(f, "{}:{line}:{column}", self.file)?,
            (None, Some(line), None) => write!(f, "{}:{line}", self.file)?,
            (None, None, _) => f.write_str(&self.file)?,
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems while a file is read, so one run reports all of them.
pub(crate) struct Problems<'f> {
    pub file: &'f str,
    pub list: Vec<Problem>,
}

impl<'f> Problems<'f> {
    pub fn new(file: &'f str) -> Self {
        Problems {
            file,
            list: Vec::new(),
        }
    }

    pub fn push(&mut self, origin: &Origin, path: &str, message: impl Into<String>) {
        self.list
            .push(Problem::new(self.file, origin, path, message.into()));
    }

    pub fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.list,
            })
        }
    }
}
