//! The session cookie on the wire: `Set-Cookie` values, chunking of large values,
//! reading them back from `Cookie` headers, and removing them before a request goes
//! upstream.
//!
//! Chunking: a value longer than [`CHUNK_SIZE`] bytes is cut into consecutive pieces of
//! at most [`CHUNK_SIZE`] bytes, sent as cookies `name` (first piece), `name_1`,
//! `name_2`, … up to `name_7` ([`MAX_CHUNKS`] pieces, ~30 KB in all); a longer value
//! is refused. Reading takes `name`, then `name_1`, `name_2`, … until one is missing,
//! and concatenates them in index order (the order cookies arrive in doesn't matter).
//! Every write also expires the indices it doesn't use, so a smaller session never
//! picks up a stale tail of a larger one.
//!
//! Values must be cookie-octets (RFC 6265 §4.1.1); sealed values (URL-safe base64)
//! always are.
//!
//! This file writes the cookie (`Set-Cookie`); `read` parses `Cookie` headers back into
//! values; `strip` removes ours from a request and names the family.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

pub use crate::config::SameSite;

mod read;
mod strip;

pub(crate) use self::read::Pieces;
pub use self::read::read_chunked;
pub use self::strip::{in_family, set_cookie_name, strip_cookies, strip_family};

/// The most value bytes in one cookie. Browsers keep at least 4096 bytes of name,
/// value and attributes per cookie; this leaves room for the name and attributes.
pub const CHUNK_SIZE: usize = 3800;
/// The most cookies one value may span (`name` plus `name_1` … `name_7`).
pub const MAX_CHUNKS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("`{0}` is not a valid cookie name")]
    InvalidName(String),
    #[error("`{0}` is not a valid cookie domain")]
    InvalidDomain(String),
    #[error("a `__Host-` cookie can't have a Domain")]
    HostPrefixWithDomain,
    #[error("the cookie value holds characters a cookie can't carry")]
    InvalidValue,
    #[error("the cookie value is {len} bytes; at most {max} fit in {MAX_CHUNKS} cookies")]
    TooLarge { len: usize, max: usize },
}

// === impl SessionCookie ===

/// How the session cookie is written: name, `Domain`, `SameSite`, `Secure`.
/// Always `Path=/` and `HttpOnly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    name: String,
    domain: Option<String>,
    same_site: SameSite,
    secure: bool,
}

impl SessionCookie {
    /// `Secure; HttpOnly; SameSite=Lax; Path=/`, no `Domain` (host-only).
    pub fn new(name: &str) -> Result<SessionCookie, CookieError> {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(CookieError::InvalidName(name.to_string()));
        }
        Ok(SessionCookie {
            name: name.to_string(),
            domain: None,
            same_site: SameSite::Lax,
            secure: true,
        })
    }

    /// Shares the cookie with every subdomain of `domain` (`cookie_domain`); a leading
    /// dot is ignored, as browsers do.
    pub fn with_domain(mut self, domain: &str) -> Result<SessionCookie, CookieError> {
        let d = domain
            .strip_prefix('.')
            .unwrap_or(domain)
            .to_ascii_lowercase();
        let valid = !d.is_empty()
            && d.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(CookieError::InvalidDomain(domain.to_string()));
        }
        if has_prefix(&self.name, "__Host-") {
            return Err(CookieError::HostPrefixWithDomain);
        }
        self.domain = Some(d);
        Ok(self)
    }

    pub fn with_same_site(mut self, same_site: SameSite) -> SessionCookie {
        self.same_site = same_site;
        self
    }

    /// Drops `Secure` (plain-HTTP development only). Ignored with `SameSite=None` and
    /// for `__Secure-`/`__Host-` names, which browsers refuse without `Secure`.
    pub fn with_secure(mut self, secure: bool) -> SessionCookie {
        self.secure = secure;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` values that store `value`: one per chunk, then one expiring each
    /// unused chunk name. `max_age: None` makes a browser-session cookie.
    pub fn set(
        &self,
        value: &str,
        max_age: Option<Duration>,
    ) -> Result<Vec<HeaderValue>, CookieError> {
        if !value.bytes().all(is_cookie_octet) {
            return Err(CookieError::InvalidValue);
        }
        let max = CHUNK_SIZE * MAX_CHUNKS;
        if value.len() > max {
            return Err(CookieError::TooLarge {
                len: value.len(),
                max,
            });
        }
        // Cookie-octets are ASCII, so any byte offset is a char boundary.
        let chunks: Vec<&str> = if value.is_empty() {
            vec![""]
        } else {
            value
                .as_bytes()
                .chunks(CHUNK_SIZE)
                .map(|c| std::str::from_utf8(c).expect("cookie-octets are ASCII"))
                .collect()
        };
        let mut out: Vec<HeaderValue> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| self.header(&chunk_name(&self.name, i), chunk, max_age))
            .collect();
        out.extend((chunks.len()..MAX_CHUNKS).map(|i| self.expire(i)));
        Ok(out)
    }

    /// The `Set-Cookie` values that delete the cookie and every chunk (`Max-Age=0`).
    pub fn clear(&self) -> Vec<HeaderValue> {
        (0..MAX_CHUNKS).map(|i| self.expire(i)).collect()
    }

    /// The value stored by [`SessionCookie::set`], reassembled from the request's
    /// `Cookie` header(s).
    pub fn read(&self, headers: &HeaderMap) -> Option<String> {
        read_chunked(headers, &self.name)
    }

    /// [`SessionCookie::read`], refusing a value any of whose chunk names came twice
    /// (see [`Pieces::of_unique`]).
    pub fn read_unique(&self, headers: &HeaderMap) -> Option<String> {
        Pieces::of_unique(headers, &self.name)?.value()
    }

    /// Removes this cookie and its chunks from the request (see [`strip_cookies`]).
    pub fn strip(&self, headers: &mut HeaderMap) {
        strip_cookies(headers, &self.name)
    }

    fn expire(&self, index: usize) -> HeaderValue {
        self.header(&chunk_name(&self.name, index), "", Some(Duration::ZERO))
    }

    fn header(&self, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let mut s = format!("{name}={value}; Path=/");
        if let Some(domain) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(domain);
        }
        if let Some(age) = max_age {
            s.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        let secure = self.secure
            || self.same_site == SameSite::None
            || has_prefix(&self.name, "__Secure-")
            || has_prefix(&self.name, "__Host-");
        if secure {
            s.push_str("; Secure");
        }
        s.push_str("; HttpOnly; SameSite=");
        s.push_str(match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        });
        HeaderValue::from_str(&s).expect("name, domain and value were validated")
    }
}

/// `name` for chunk 0, `name_<i>` after.
fn chunk_name(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_string()
    } else {
        format!("{name}_{index}")
    }
}

fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6265 `cookie-octet`: visible ASCII except `"`, `,`, `;` and `\`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::COOKIE;

    fn request(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    fn texts(values: &[HeaderValue]) -> Vec<&str> {
        values.iter().map(|v| v.to_str().unwrap()).collect()
    }

    fn cookie_header(set: &[HeaderValue]) -> String {
        // What a browser sends back: name=value of each live cookie.
        set.iter()
            .map(|v| v.to_str().unwrap())
            .filter(|v| !v.contains("Max-Age=0"))
            .map(|v| v.split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn set_cookie_attributes() {
        let hour = Some(Duration::from_secs(3600));
        let base = SessionCookie::new("_portcullis").unwrap();
        for (cookie, want) in [
            (
                base.clone(),
                "_portcullis=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax",
            ),
            (
                base.clone().with_domain(".Corp.Example.com").unwrap(),
                "_portcullis=v; Path=/; Domain=corp.example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax",
            ),
            (
                base.clone().with_same_site(SameSite::Strict),
                "_portcullis=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict",
            ),
            (
                base.clone().with_secure(false),
                "_portcullis=v; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax",
            ),
            (
                base.clone()
                    .with_secure(false)
                    .with_same_site(SameSite::None),
                "_portcullis=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=None",
            ),
            (
                SessionCookie::new("__Host-s").unwrap().with_secure(false),
                "__Host-s=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax",
            ),
        ] {
            let set = cookie.set("v", hour).unwrap();
            assert_eq!(set[0].to_str().unwrap(), want);
        }
        let session = base.set("v", None).unwrap();
        assert_eq!(
            session[0].to_str().unwrap(),
            "_portcullis=v; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn small_value_is_one_cookie_and_expires_the_other_chunk_names() {
        let c = SessionCookie::new("s").unwrap();
        let set = c.set("abc", Some(Duration::from_secs(60))).unwrap();
        assert_eq!(set.len(), MAX_CHUNKS);
        let t = texts(&set);
        assert!(t[0].starts_with("s=abc; "));
        for (i, text) in t.iter().enumerate().skip(1) {
            assert_eq!(
                *text,
                format!("s_{i}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax")
            );
        }
    }

    #[test]
    fn chunk_counts_at_the_boundaries() {
        let c = SessionCookie::new("s").unwrap();
        for (len, chunks) in [
            (0, 1),
            (1, 1),
            (CHUNK_SIZE, 1),
            (CHUNK_SIZE + 1, 2),
            (CHUNK_SIZE * 3, 3),
            (CHUNK_SIZE * MAX_CHUNKS, MAX_CHUNKS),
        ] {
            let value: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let set = c.set(&value, None).unwrap();
            let live = set
                .iter()
                .filter(|v| !v.to_str().unwrap().contains("Max-Age=0"))
                .count();
            assert_eq!(live, chunks, "len {len}");
            for v in &set {
                assert!(
                    v.len() <= 4096,
                    "len {len}: a Set-Cookie of {} bytes",
                    v.len()
                );
            }
            let back = read_chunked(&request(&[&cookie_header(&set)]), "s");
            assert_eq!(back.as_deref(), Some(value.as_str()), "len {len}");
        }
    }

    #[test]
    fn refuses_oversized_and_invalid_values_and_names() {
        let c = SessionCookie::new("s").unwrap();
        let too_big = "a".repeat(CHUNK_SIZE * MAX_CHUNKS + 1);
        assert_eq!(
            c.set(&too_big, None),
            Err(CookieError::TooLarge {
                len: too_big.len(),
                max: CHUNK_SIZE * MAX_CHUNKS
            })
        );
        for bad in [
            "a b",
            "a;b",
            "a,b",
            "a\"b",
            "a\\b",
            "é",
            "a\r\nSet-Cookie: x",
        ] {
            assert_eq!(c.set(bad, None), Err(CookieError::InvalidValue), "{bad:?}");
        }
        for bad in ["", "a b", "a=b", "a;b", "ä", "a\n"] {
            assert!(SessionCookie::new(bad).is_err(), "{bad:?}");
        }
        for bad in ["", ".", "a..b", "a b", "a;b", "a/b", "a.com.", "x\r\ny"] {
            assert!(c.clone().with_domain(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            SessionCookie::new("__Host-s")
                .unwrap()
                .with_domain("example.com"),
            Err(CookieError::HostPrefixWithDomain)
        );
    }

    #[test]
    fn clear_expires_every_chunk_name() {
        let c = SessionCookie::new("s")
            .unwrap()
            .with_domain("example.com")
            .unwrap();
        let cleared = c.clear();
        assert_eq!(cleared.len(), MAX_CHUNKS);
        for (i, v) in texts(&cleared).iter().enumerate() {
            let name = if i == 0 {
                "s".to_string()
            } else {
                format!("s_{i}")
            };
            assert_eq!(
                *v,
                format!(
                    "{name}=; Path=/; Domain=example.com; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
                )
            );
        }
    }

    #[test]
    fn reassembles_in_index_order_whatever_the_arrival_order() {
        for headers in [
            vec!["s=AA; s_1=BB; s_2=CC"],
            vec!["s_2=CC; s_1=BB; s=AA"],
            vec!["other=1; s_1=BB", "s_2=CC", "s=AA; more=2"],
            vec!["s_1=BB", "s_2=CC", "s=AA"],
            vec!["s=\"AA\"; s_1=BB; s_2=\"CC\""],
            vec!["  s = AA ;s_1=BB;\ts_2=CC  "],
        ] {
            assert_eq!(
                read_chunked(&request(&headers), "s").as_deref(),
                Some("AABBCC"),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn pieces_compare_and_hash_like_the_joined_value() {
        let h = request(&["s_1=defgh; s=abc; s_2=ij"]);
        let p = Pieces::of(&h, "s").unwrap();
        assert_eq!(p.len(), 10);
        assert_eq!(p.value().as_deref(), Some("abcdefghij"));
        for (other, same) in [
            ("abcdefghij", true),
            ("abcdefghi", false),
            ("abcdefghijk", false),
            ("abcxefghij", false),
            ("", false),
        ] {
            assert_eq!(p.eq_bytes(other.as_bytes()), same, "{other}");
        }
        assert_eq!(p.tail::<4>(), (*b"ghij", 4));
        assert_eq!(p.tail::<8>(), (*b"cdefghij", 8));
        assert_eq!(p.tail::<12>(), (*b"\0\0abcdefghij", 10));
        assert!(Pieces::of(&h, "t").is_none());
    }

    #[test]
    fn credentials_refuse_a_name_seen_twice() {
        for (headers, want) in [
            (vec!["s=AA; s_1=BB"], Some("AABB")),
            (vec!["s=EVIL; s=AA"], None),
            (vec!["s=AA", "s=EVIL"], None),
            (vec!["s=AA; s_1=EVIL; s_1=BB"], None),
            (vec!["s=AA; sx=1; s_=2"], Some("AA")),
        ] {
            let h = request(&headers);
            assert_eq!(
                Pieces::of_unique(&h, "s")
                    .and_then(|p| p.value())
                    .as_deref(),
                want,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn reading_stops_at_the_first_missing_chunk() {
        for (headers, want) in [
            (vec!["s=AA; s_2=CC"], Some("AA")),
            (vec!["s_1=BB; s_2=CC"], None),
            (vec!["x=1"], None),
            (vec![], None),
            (vec!["s="], Some("")),
            (vec!["s=AA; s_1=BB; s_3=DD"], Some("AABB")),
        ] {
            assert_eq!(
                read_chunked(&request(&headers), "s").as_deref(),
                want,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn cookies_parse_robustly_and_first_wins() {
        for (headers, name, want) in [
            (vec!["a=1; b=2"], "b", Some("2")),
            (vec!["a=1;b=2"], "b", Some("2")),
            (vec!["a=1; a=2"], "a", Some("1")),
            (vec!["a=1", "a=2"], "a", Some("1")),
            (vec!["a=\"quoted\""], "a", Some("quoted")),
            (vec!["a=\""], "a", Some("\"")),
            (vec!["a=x=y"], "a", Some("x=y")),
            (vec!["ab=1"], "a", None),
            (vec!["A=1"], "a", None),
            (vec!["flag; a=1"], "a", Some("1")),
            (vec!["flag"], "flag", None),
            (vec!["; ; a=1;;"], "a", Some("1")),
            (vec![" a =  1 "], "a", Some("1")),
        ] {
            assert_eq!(
                read_chunked(&request(&headers), name).as_deref(),
                want,
                "{headers:?} {name}"
            );
        }
        // A non-UTF-8 first value hides later ones (first wins), without panicking.
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_bytes(b"a=\xff; a=2").unwrap());
        assert_eq!(read_chunked(&h, "a"), None);
    }

    #[test]
    fn strip_removes_ours_and_keeps_the_rest_intact() {
        for (headers, want) in [
            (vec!["s=AA"], None),
            (vec!["s=AA; s_1=BB; s_7=CC; s_12=DD"], None),
            (vec!["a=1; s=AA; b=2"], Some("a=1; b=2")),
            (vec!["a=\"q v\"; s=AA"], Some("a=\"q v\"")),
            (
                vec!["s_1=BB; sx=1; s_=2; s_1a=3; s_x=4; S=5"],
                Some("sx=1; s_=2; s_1a=3; s_x=4; S=5"),
            ),
            (vec!["a=1", "s=AA", "b=2"], Some("a=1; b=2")),
            (vec!["s=AA", "s_1=BB"], None),
            (vec!["s=AA; ;", " ; "], None),
            (vec!["a=1", "b=2"], Some("a=1; b=2")),
            (vec!["a=1;b=2"], Some("a=1;b=2")),
            (vec!["flag; s=AA"], Some("flag")),
            (vec![" s = AA ; a=1"], Some("a=1")),
            (vec![], None),
        ] {
            let mut h = request(&headers);
            strip_cookies(&mut h, "s");
            let got: Vec<&str> = h
                .get_all(COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{headers:?}");
        }
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_bytes(b"a=\xff; s=AA").unwrap());
        SessionCookie::new("s").unwrap().strip(&mut h);
        assert_eq!(h.get(COOKIE).unwrap().as_bytes(), b"a=\xff");
    }

    #[test]
    fn a_written_session_reads_back_and_strips_away() {
        let c = SessionCookie::new("_portcullis").unwrap();
        let value = "Zm9v".repeat(2500); // 10,000 bytes: 3 chunks
        let set = c.set(&value, Some(Duration::from_secs(60))).unwrap();
        let mut h = request(&[&format!("app=1; {}", cookie_header(&set))]);
        assert_eq!(c.read(&h).as_deref(), Some(value.as_str()));
        c.strip(&mut h);
        assert_eq!(h.get(COOKIE).unwrap(), "app=1");
    }
}
