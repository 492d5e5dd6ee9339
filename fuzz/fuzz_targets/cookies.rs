//! Arbitrary `Cookie` headers against the cookie reader. Input: the first line is the
//! cookie name (also the family base), every further line one `Cookie` header value
//! (lines that are not valid header values are dropped).
//!
//! Asserts: nothing panics; [`strip_family`] keeps every pair outside the family byte
//! for byte and in order, and leaves none inside it; after [`strip_cookies`] and after
//! [`strip_family`], [`read_chunked`] finds nothing; a value written by
//! [`SessionCookie::set`] reads back as written (plainly and with
//! [`SessionCookie::read_unique`]), even among the fuzzed cookies once ours are
//! stripped; a unique read is the plain read or nothing; [`set_cookie_name`] returns a
//! trimmed name without `;`.
#![no_main]

use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::api::auth::cookies::{
    SessionCookie, in_family, read_chunked, set_cookie_name, strip_cookies, strip_family,
};

/// The `;`-separated pairs of a header value, trimmed of spaces and tabs, empty ones
/// dropped: how the reader splits them (RFC 6265 §5.4, leniently).
fn pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b';')
        .map(trim)
        .filter(|p| !p.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn name_of(pair: &[u8]) -> &[u8] {
    trim(pair.split(|b| *b == b'=').next().unwrap_or(pair))
}

fn all_pairs(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .map(<[u8]>::to_vec)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let name_bytes = lines.next().unwrap_or_default();
    let Ok(name) = std::str::from_utf8(name_bytes) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
        }
    }

    let _ = read_chunked(&headers, name);
    let sc = set_cookie_name(data);
    assert!(
        !sc.contains(&b';') && trim(sc) == sc,
        "set_cookie_name: {sc:?}"
    );
    for pair in all_pairs(&headers) {
        let _ = in_family(name_of(&pair), name.as_bytes());
    }

    // strip_family keeps the others byte for byte, in order, and nothing of ours.
    let mut stripped = headers.clone();
    strip_family(&mut stripped, name);
    let want: Vec<Vec<u8>> = all_pairs(&headers)
        .into_iter()
        .filter(|p| !in_family(name_of(p), name.as_bytes()))
        .collect();
    let got = all_pairs(&stripped);
    assert_eq!(got, want, "strip_family({name:?}) on {headers:?}");
    assert!(stripped.get_all(COOKIE).iter().count() <= 1);
    assert_eq!(
        read_chunked(&stripped, name),
        None,
        "family stripped: {stripped:?}"
    );
    let mut ours_stripped = headers.clone();
    strip_cookies(&mut ours_stripped, name);
    assert_eq!(
        read_chunked(&ours_stripped, name),
        None,
        "stripped: {ours_stripped:?}"
    );

    // A value we write reads back, whatever other cookies come with it.
    let Ok(cookie) = SessionCookie::new(name) else {
        return;
    };
    // A unique read is the plain read, or nothing (a chunk name came twice).
    if let Some(unique) = cookie.read_unique(&headers) {
        assert_eq!(Some(unique), read_chunked(&headers, name), "{headers:?}");
    }
    let value: String = data
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_')
        .map(|b| *b as char)
        .cycle()
        .take(data.len() * 37 % 9000)
        .collect();
    let set = cookie.set(&value, None).expect("URL-safe base64 fits");
    let browser: Vec<String> = set
        .iter()
        .map(|v| v.to_str().expect("ASCII"))
        .filter(|v| !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .collect();
    let mut with_ours = ours_stripped;
    with_ours.append(
        COOKIE,
        HeaderValue::from_str(&browser.join("; ")).expect("valid cookie pairs"),
    );
    for read in [cookie.read(&with_ours), cookie.read_unique(&with_ours)] {
        assert_eq!(
            read.as_deref(),
            Some(value.as_str()),
            "read back among {with_ours:?}"
        );
    }
});
