//! The one canonical form of a request path, decided before anything looks at it: route
//! lookup, `http_path` policies, rewrites, the forwarded request and logs all use it.
//!
//! [`canonical`] (the default for every route):
//! - percent-decodes unreserved characters (`%41` → `A`, `%2e` → `.`) and upper-cases
//!   the hex of every other escape (`%2f` → `%2F`);
//! - merges repeated slashes (`//admin` → `/admin`);
//! - removes dot-segments (RFC 3986 §5.2.4), their encoded forms included
//!   (`/public/%2e%2e/private` → `/private`);
//! - refuses what cannot be made unambiguous, because upstreams read it differently:
//!   encoded slashes and backslashes (`%2F`, `%5C`), raw backslashes, `;` in a segment
//!   or `%3B` (Tomcat and Spring read `/admin;x` as `/admin`, `..;` as `..`), control bytes (raw
//!   or encoded, NUL included), non-ASCII bytes, malformed escapes.
//!
//! [`lenient`] keeps encoded slashes, repeated slashes and `;` as written (for routes
//! whose apps need them: RabbitMQ's `%2F` vhost, GitLab, registry APIs), and still
//! decodes unreserved escapes and removes dot-segments; [`interpreted`] is how a lenient
//! upstream might read such a path, so the caller can refuse one that two routes would
//! claim.
//!
//! Both are fixed points: canonicalizing a canonical path gives it back unchanged.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("the path holds a control character")]
    Control,
    #[error("the path holds a byte that is not ASCII")]
    NonAscii,
    #[error("the path holds a malformed percent-escape")]
    BadEscape,
    #[error("the path holds a backslash")]
    Backslash,
    #[error("the path holds an encoded slash or backslash (%2F, %5C)")]
    EncodedSlash,
    #[error("the path holds `;` (a path parameter)")]
    Semicolon,
}

impl PathError {
    /// Whether [`lenient`] keeps what this error refuses.
    pub fn lenient_keeps(self) -> bool {
        matches!(self, PathError::EncodedSlash | PathError::Semicolon)
    }
}

/// The canonical form of `raw` (a path without its query), or why it has none.
/// Borrows when `raw` is canonical already, as nearly every path is.
pub fn canonical(raw: &str) -> Result<Cow<'_, str>, PathError> {
    normalize(raw, Mode::Strict)
}

/// The canonical form with encoded slashes, repeated slashes and `;` kept as written.
pub fn lenient(raw: &str) -> Result<Cow<'_, str>, PathError> {
    normalize(raw, Mode::Lenient)
}

/// How an upstream that decodes `%2F`/`%5C`, drops `;` parameters and merges slashes
/// would read a [`lenient`] path, made canonical.
pub fn interpreted(lenient_path: &str) -> String {
    let mut out = String::with_capacity(lenient_path.len());
    let bytes = lenient_path.as_bytes();
    let mut i = 0;
    let mut in_params = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'/' {
            in_params = false;
            out.push('/');
            i += 1;
            continue;
        }
        if b == b'%'
            && let Some(v) = escape_at(bytes, i)
            && (v == b'/' || v == b'\\')
        {
            in_params = false;
            out.push('/');
            i += 3;
            continue;
        }
        // Spring decodes `%3B` before it drops `;` parameters.
        if b == b'%' && escape_at(bytes, i) == Some(b';') {
            in_params = true;
            i += 3;
            continue;
        }
        if b == b';' {
            in_params = true;
        }
        if !in_params {
            out.push(b as char);
        }
        i += 1;
    }
    match canonical(&out) {
        Ok(p) => p.into_owned(),
        // Only parameters or escapes a strict reading refuses could remain: compare
        // them as written.
        Err(_) => out,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Lenient,
}

fn normalize(raw: &str, mode: Mode) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes, mode)? {
        return Ok(Cow::Borrowed(raw));
    }
    // Escapes and raw bytes, decided one by one.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let v = escape_at(bytes, i).ok_or(PathError::BadEscape)?;
                i += 3;
                if is_unreserved(v) {
                    decoded.push(v);
                } else if v < 0x20 || v == 0x7f {
                    return Err(PathError::Control);
                } else if (v == b'/' || v == b'\\') && mode == Mode::Strict {
                    return Err(PathError::EncodedSlash);
                } else if v == b';' && mode == Mode::Strict {
                    // Spring decodes before it drops `;` parameters.
                    return Err(PathError::Semicolon);
                } else {
                    decoded.push(b'%');
                    decoded.extend_from_slice(&hex_upper(v));
                }
                continue;
            }
            b';' if mode == Mode::Strict => return Err(PathError::Semicolon),
            _ => decoded.push(b),
        }
        i += 1;
    }
    if mode == Mode::Strict {
        decoded.dedup_by(|a, b| *a == b'/' && *b == b'/');
    }
    let out = remove_dot_segments(&decoded);
    let out = String::from_utf8(out).expect("ASCII in, ASCII out");
    Ok(if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    })
}

/// Whether `bytes` is already canonical (the common case: checked without copying);
/// errors for bytes no mode accepts.
fn is_plain(bytes: &[u8], mode: Mode) -> Result<bool, PathError> {
    let mut plain = true;
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0..=0x20 | 0x7f => return Err(PathError::Control),
            0x80.. => return Err(PathError::NonAscii),
            b'\\' => return Err(PathError::Backslash),
            b'%' => plain = false,
            b';' => plain &= mode == Mode::Lenient,
            b'/' if prev == b'/' => plain &= mode == Mode::Lenient,
            b'.' if prev == b'/' => {
                // `/.` ends a dot-segment when followed by `/`, the end, or `./`/`.`+end.
                let rest = &bytes[i + 1..];
                if rest.is_empty()
                    || rest[0] == b'/'
                    || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/'))
                {
                    plain = false;
                }
            }
            _ => {}
        }
        prev = b;
    }
    Ok(plain)
}

/// RFC 3986 §5.2.4 on an absolute path (starts with `/`).
fn remove_dot_segments(input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(b"/./") {
            rest = &rest[rest.len() - r.len() - 1..];
        } else if rest == b"/." {
            rest = b"/";
        } else if let Some(r) = rest.strip_prefix(b"/../") {
            rest = &rest[rest.len() - r.len() - 1..];
            pop_segment(&mut out);
        } else if rest == b"/.." {
            rest = b"/";
            pop_segment(&mut out);
        } else {
            // Move the first segment (with its leading `/`) to the output.
            let end = rest[1..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(rest.len(), |p| p + 1);
            out.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn pop_segment(out: &mut Vec<u8>) {
    match out.iter().rposition(|&b| b == b'/') {
        Some(p) => out.truncate(p),
        None => out.clear(),
    }
}

fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?)
}

fn hex_upper(v: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [HEX[usize::from(v >> 4)], HEX[usize::from(v & 15)]]
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/app/x", Ok("/app/x")),
            ("/a.b/c.d/.e", Ok("/a.b/c.d/.e")),
            ("/..a/b..", Ok("/..a/b..")),
            // Dot-segments, raw and encoded, in any case.
            ("/public/../private/x", Ok("/private/x")),
            ("/public/%2e%2e/private/x", Ok("/private/x")),
            ("/public/%2E%2E/private/x", Ok("/private/x")),
            ("/public/.%2e/private/x", Ok("/private/x")),
            ("/public/./../private/x", Ok("/private/x")),
            ("/public/%2e/../private/x", Ok("/private/x")),
            ("/../../etc/passwd", Ok("/etc/passwd")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/.", Ok("/a/b/")),
            ("/a/./b/./", Ok("/a/b/")),
            ("/..", Ok("/")),
            ("/.", Ok("/")),
            // Repeated slashes.
            ("//admin", Ok("/admin")),
            ("/a///b//", Ok("/a/b/")),
            ("//..//admin", Ok("/admin")),
            // Unreserved escapes decoded; others upper-cased.
            ("/%61dmin", Ok("/admin")),
            ("/%41%7E%2D%5f", Ok("/A~-_")),
            ("/a%20b", Ok("/a%20b")),
            ("/a%3fb", Ok("/a%3Fb")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/admin%3bx", Err(PathError::Semicolon)),
            // Refused.
            ("/public/..;/private", Err(PathError::Semicolon)),
            ("/admin;x", Err(PathError::Semicolon)),
            ("/a%2Fb", Err(PathError::EncodedSlash)),
            ("/a%2fb", Err(PathError::EncodedSlash)),
            ("/a%5cb", Err(PathError::EncodedSlash)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%00b", Err(PathError::Control)),
            ("/a%0ab", Err(PathError::Control)),
            ("/a%7fb", Err(PathError::Control)),
            ("/a\tb", Err(PathError::Control)),
            ("/a b", Err(PathError::Control)),
            ("/a%zz", Err(PathError::BadEscape)),
            ("/a%2", Err(PathError::BadEscape)),
            ("/é", Err(PathError::NonAscii)),
            ("admin", Err(PathError::NotAbsolute)),
            ("", Err(PathError::NotAbsolute)),
            ("*", Err(PathError::NotAbsolute)),
        ];
        for (raw, want) in cases {
            let got = canonical(raw);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{raw:?}");
            if let Ok(p) = got {
                assert_eq!(canonical(&p).as_deref(), Ok(&*p), "fixed point: {raw:?}");
            }
        }
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for raw in ["/", "/app/x.js", "/a/.well-known/b", "/a-b_c~d"] {
            assert!(matches!(canonical(raw), Ok(Cow::Borrowed(_))), "{raw}");
        }
        assert!(matches!(canonical("/a/../b"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn lenient_forms() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/api/vhosts/%2f", Ok("/api/vhosts/%2F")),
            ("/a//b", Ok("/a//b")),
            ("/a;jsessionid=1/b", Ok("/a;jsessionid=1/b")),
            ("/a/%2e%2e/b", Ok("/b")),
            ("/a/../%2F", Ok("/%2F")),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%00", Err(PathError::Control)),
        ];
        for (raw, want) in cases {
            let got = lenient(raw);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{raw:?}");
            if let Ok(p) = got {
                assert_eq!(lenient(&p).as_deref(), Ok(&*p), "fixed point: {raw:?}");
            }
        }
    }

    #[test]
    fn interpretations() {
        for (lenient_path, want) in [
            ("/api/%2F..%2Fadmin", "/admin"),
            ("/admin;x/y", "/admin/y"),
            ("/public/..;/private", "/private"),
            ("/public/..%3B/private", "/private"),
            ("/public/..%3b", "/"),
            ("/a//b", "/a/b"),
            ("/api/vhosts/%2F", "/api/vhosts/"),
            ("/plain", "/plain"),
        ] {
            assert_eq!(interpreted(lenient_path), want, "{lenient_path}");
        }
    }

    #[test]
    fn only_encoded_slashes_and_parameters_are_relaxable() {
        assert!(PathError::EncodedSlash.lenient_keeps());
        assert!(PathError::Semicolon.lenient_keeps());
        for e in [
            PathError::Control,
            PathError::Backslash,
            PathError::NonAscii,
            PathError::BadEscape,
            PathError::NotAbsolute,
        ] {
            assert!(!e.lenient_keeps(), "{e:?}");
        }
    }
}
