//! Secrets from the config file: kept out of `Debug` output and error messages.

use std::fmt;

/// A secret value. `Debug` prints `[redacted]`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret itself, for the one place that needs it (signing, the IdP, ...).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Decodes standard or URL-safe base64, padding optional (what `head -c32 /dev/urandom |
/// base64` and Pomerium's docs produce). The error never contains the input.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, &'static str> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // One alphabet, no line breaks: URL-safe digits read as standard ones.
    let normal: String = text
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r' | ' '))
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT
        .decode(normal.trim_end_matches('='))
        .map_err(|e| match e {
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidLastSymbol(..) => {
                "is not valid base64 (truncated)"
            }
            _ => "is not valid base64",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn base64_forms() {
        for (text, want) in [
            ("aGVsbG8=", Some(&b"hello"[..])),
            ("aGVsbG8", Some(b"hello")),
            ("aGk+Pz8/", Some(b"hi>???")),
            ("aGk-Pz8_", Some(b"hi>???")),
            ("", Some(b"")),
            ("a", None),
            ("a*bc", None),
        ] {
            assert_eq!(decode_base64(text).ok().as_deref(), want, "{text}");
        }
    }
}
