//! Reading `Cookie` headers: one pass per cookie name over every pair, chunks joined in
//! index order, a name seen twice noted.

use http::header::{COOKIE, HeaderMap};

use super::MAX_CHUNKS;

/// A value written in chunks by [`SessionCookie::set`]: `name`, `name_1`, … until one
/// is missing (at most [`MAX_CHUNKS`]), concatenated in index order.
pub fn read_chunked(headers: &HeaderMap, name: &str) -> Option<String> {
    Pieces::of(headers, name)?.value()
}

/// A chunked cookie value as it arrived, in index order: what a cache can compare and
/// hash without joining and copying kilobytes. [`Pieces::value`] joins them as
/// [`read_chunked`] does.
pub(crate) struct Pieces<'a> {
    parts: [&'a [u8]; MAX_CHUNKS],
    count: usize,
}

impl<'a> Pieces<'a> {
    pub(crate) fn of(headers: &'a HeaderMap, name: &str) -> Option<Pieces<'a>> {
        Pieces::from_scan(Scan::of(headers, name))
    }

    /// Like [`Pieces::of`], but `None` when any chunk name comes twice: a browser holds
    /// two cookies of that name (one planted by a sibling host, or with another
    /// `Path`), and which one it sent first proves nothing. Credentials are read so.
    pub(crate) fn of_unique(headers: &'a HeaderMap, name: &str) -> Option<Pieces<'a>> {
        let scan = Scan::of(headers, name);
        if scan.duplicate {
            return None;
        }
        Pieces::from_scan(scan)
    }

    fn from_scan(scan: Scan<'a>) -> Option<Pieces<'a>> {
        let mut pieces = Pieces {
            parts: [&[][..]; MAX_CHUNKS],
            count: 0,
        };
        for chunk in scan.chunks.into_iter().map_while(|c| c) {
            pieces.parts[pieces.count] = chunk;
            pieces.count += 1;
        }
        (pieces.count > 0).then_some(pieces)
    }

    pub fn len(&self) -> usize {
        self.parts[..self.count].iter().map(|p| p.len()).sum()
    }

    /// Whether the joined value is exactly `value`.
    pub fn eq_bytes(&self, mut value: &[u8]) -> bool {
        for part in &self.parts[..self.count] {
            match value.strip_prefix(*part) {
                Some(rest) => value = rest,
                None => return false,
            }
        }
        value.is_empty()
    }

    /// The last `N` bytes of the joined value (fewer when it is shorter), at the end of
    /// the array; returns how many are filled.
    pub fn tail<const N: usize>(&self) -> ([u8; N], usize) {
        let mut out = [0u8; N];
        let mut filled = 0;
        for part in self.parts[..self.count].iter().rev() {
            let take = part.len().min(N - filled);
            out[N - filled - take..N - filled].copy_from_slice(&part[part.len() - take..]);
            filled += take;
            if filled == N {
                break;
            }
        }
        (out, filled)
    }

    /// The joined value, as [`read_chunked`] reads it (stopping before a piece that
    /// is not UTF-8; `None` when the first is not).
    pub fn value(&self) -> Option<String> {
        let mut value = String::with_capacity(self.len());
        for (i, part) in self.parts[..self.count].iter().enumerate() {
            match std::str::from_utf8(part) {
                Ok(piece) => value.push_str(piece),
                Err(_) if i == 0 => return None,
                Err(_) => break,
            }
        }
        Some(value)
    }
}

/// One pass over the `Cookie` headers for one cookie name: the first value seen for
/// each chunk name (unquoted, not yet checked as UTF-8). Session cookies run to
/// kilobytes and come with every request, so this reads them once.
struct Scan<'a> {
    chunks: [Option<&'a [u8]>; MAX_CHUNKS],
    /// A chunk name came more than once (two cookies of one name: one was planted).
    duplicate: bool,
}

impl<'a> Scan<'a> {
    fn of(headers: &'a HeaderMap, name: &str) -> Scan<'a> {
        let mut scan = Scan {
            chunks: [None; MAX_CHUNKS],
            duplicate: false,
        };
        for header in headers.get_all(COOKIE) {
            for pair in pairs(header.as_bytes()) {
                let Some((n, v)) = split_pair(pair) else {
                    continue;
                };
                if let Some(i) = chunk_index(n, name.as_bytes()) {
                    scan.duplicate |= scan.chunks[i].is_some();
                    scan.chunks[i].get_or_insert(unquote(v));
                }
            }
        }
        scan
    }
}

/// The chunk index a cookie name stands for: `name` → 0, `name_1` … `name_7` → 1 … 7
/// (exactly as [`chunk_name`] writes them).
fn chunk_index(candidate: &[u8], name: &[u8]) -> Option<usize> {
    match candidate.strip_prefix(name)? {
        [] => Some(0),
        [b'_', d @ b'1'..=b'9'] => Some(usize::from(d - b'0')).filter(|i| *i < MAX_CHUNKS),
        _ => None,
    }
}

/// The (trimmed) name of a `name=value` pair, or the whole pair without `=`.
pub(super) fn pair_name(pair: &[u8]) -> &[u8] {
    split_pair(pair).map_or(trim(pair), |(n, _)| n)
}

/// The `;`-separated pairs of one header value, trimmed of spaces and tabs.
pub(super) fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let h = rest?;
        match memchr::memchr(b';', h) {
            Some(i) => {
                rest = Some(&h[i + 1..]);
                Some(trim(&h[..i]))
            }
            None => {
                rest = None;
                Some(trim(h))
            }
        }
    })
}

/// `name=value` → (name, value), both trimmed. `None` without `=`.
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = memchr::memchr(b'=', pair)?;
    Some((trim(&pair[..eq]), trim(&pair[eq + 1..])))
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

pub(super) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
