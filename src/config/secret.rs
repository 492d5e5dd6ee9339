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
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    let body = text.trim().trim_end_matches('=');
    for b in body.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'\n' | b'\r' | b' ' => continue,
            _ => return Err("is not valid base64"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("is not valid base64 (truncated)");
    }
    Ok(out)
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
