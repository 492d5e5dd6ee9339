//! Arbitrary text as a request path. Asserts what issue 13 asks of the canonical form:
//! - [`canonical`] and [`lenient`] are fixed points;
//! - a canonical path holds none of `//`, `/./`, `/../`, a trailing `/.` or `/..`, `;`,
//!   `%2F`/`%5C`, an escape of an unreserved character or lowercase hex;
//! - `lenient` accepts everything `canonical` accepts, and refuses the rest with the
//!   same error unless the error is one it keeps (`PathError::lenient_keeps`);
//! - in a table with a segment prefix `/public`, a segment prefix `/admin` and a
//!   catch-all, a path looked up by its canonical form is matched by a prefix exactly
//!   when that canonical form lies inside it, and an upstream that decodes `%2F`, drops
//!   `;` parameters and merges slashes ([`interpreted`]) reads it inside the same prefix;
//! - the lookup phase as `proxy/request/lookup.rs` does it (the strict form, else the
//!   lenient form on a `lenient_paths` route when [`interpreted`] lands on the same
//!   route; `/public` is such a route here) never forwards a path that an upstream which
//!   percent-decodes, splits on `/` and `\`, drops `;` parameters and resolves
//!   dot-segments ([`upstream_reads`], written independently of `routes::path`) would
//!   route elsewhere.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use portcullis::api::policy::Policy;
use portcullis::api::routes::path::{canonical, interpreted, lenient};
use portcullis::api::routes::{
    BackendSpec, Balance, EndpointSpec, HostMatch, Model, PathMatch, RouteOptions, RouteSpec,
    RoutingTable, UpstreamScheme, build,
};

const HOST: &str = "app.example.com";
const PREFIXES: [&str; 2] = ["/public", "/admin"];

static TABLE: LazyLock<RoutingTable> = LazyLock::new(|| {
    let route = |id: &str, path: PathMatch| RouteSpec {
        id: id.to_string(),
        host: HostMatch::Exact(HOST.to_string()),
        port: None,
        path,
        backend: BackendSpec {
            endpoints: vec![EndpointSpec {
                scheme: UpstreamScheme::Http,
                host: id.to_string(),
                port: 8080,
                reach: Default::default(),
            }],
            balance: Balance::RoundRobin,
        },
        policy: Arc::new(Policy::default()),
        options: RouteOptions::default(),
    };
    let model = Model {
        routes: vec![
            RouteSpec {
                options: RouteOptions {
                    lenient_paths: true,
                    ..RouteOptions::default()
                },
                ..route("/public", PathMatch::SegmentPrefix("/public".into()))
            },
            route("/admin", PathMatch::SegmentPrefix("/admin/".into())),
            route("catch-all", PathMatch::Any),
        ],
        ..Model::default()
    };
    let (table, diagnostics) = build(&model, None);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    table
});

/// Whether `path` lies inside the segment prefix `prefix` (`/public`, `/public/…`).
fn inside(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn route_of(path: &str) -> String {
    TABLE
        .lookup(HOST, 443, path)
        .map(|m| m.route.id.to_string())
        .expect("the catch-all takes every path")
}

/// The route and the forwarded path, as the lookup phase decides them; `None` when it
/// refuses the path (400).
fn lookup_phase(raw: &str) -> Option<(String, String)> {
    match canonical(raw) {
        Ok(c) => return Some((route_of(&c), c.into_owned())),
        Err(e) if !e.lenient_keeps() => return None,
        Err(_) => {}
    }
    let l = lenient(raw).ok()?;
    let m = TABLE.lookup(HOST, 443, &l)?;
    let same = TABLE
        .lookup(HOST, 443, &interpreted(&l))
        .is_some_and(|other| Arc::ptr_eq(other.route, m.route));
    (m.route.options.lenient_paths && same).then(|| (m.route.id.to_string(), l.into_owned()))
}

/// How a decoding upstream (Tomcat, Spring, many frameworks) reads a path: every escape
/// decoded once, `/` and `\` both separators, `;…` dropped from each segment, empty and
/// `.` segments skipped, `..` going up. Independent of `routes::path` on purpose.
fn upstream_reads(path: &str) -> String {
    let b = path.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                decoded.push(v);
                i += 3;
            }
            (c, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|c| *c == b'/' || *c == b'\\') {
        let segment = segment.split(|c| *c == b';').next().unwrap_or_default();
        match segment {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut read = String::new();
    for s in out {
        read.push('/');
        read.push_str(&String::from_utf8_lossy(s));
    }
    if read.is_empty() {
        read.push('/');
    }
    read
}

fn assert_canonical_shape(raw: &str, c: &str) {
    let b = c.as_bytes();
    assert!(c.starts_with('/'), "{raw:?} -> {c:?}: not absolute");
    for bad in ["//", "/./", "/../", ";"] {
        assert!(!c.contains(bad), "{raw:?} -> {c:?}: holds {bad:?}");
    }
    for bad in ["/.", "/.."] {
        assert!(!c.ends_with(bad), "{raw:?} -> {c:?}: ends with {bad:?}");
    }
    for (i, &ch) in b.iter().enumerate() {
        assert!(
            ch.is_ascii_graphic() && ch != b'\\',
            "{raw:?} -> {c:?}: byte {ch:#04x}"
        );
        if ch != b'%' {
            continue;
        }
        let hex = b.get(i + 1..i + 3).expect("an escape has two hex digits");
        assert!(
            hex.iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)),
            "{raw:?} -> {c:?}: escape %{} is not upper-case hex",
            String::from_utf8_lossy(hex)
        );
        let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(
            !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
            "{raw:?} -> {c:?}: unreserved {:?} left escaped",
            v as char
        );
        assert!(
            !matches!(v, b'/' | b'\\' | b';') && v >= 0x20 && v != 0x7f,
            "{raw:?} -> {c:?}: escape %{v:02X} should have been refused"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let strict = canonical(raw);
    let loose = lenient(raw);

    // lenient ⊇ canonical, with the same refusals except the ones it keeps.
    match (&strict, &loose) {
        (Ok(_), Err(e)) => panic!("{raw:?}: canonical accepts, lenient refuses ({e:?})"),
        (Err(e), Ok(_)) if !e.lenient_keeps() => {
            panic!("{raw:?}: lenient accepts what canonical refuses as {e:?}")
        }
        (Err(s), Err(l)) if !s.lenient_keeps() && s != l => {
            panic!("{raw:?}: canonical refuses as {s:?}, lenient as {l:?}")
        }
        _ => {}
    }

    if let Ok(l) = &loose {
        assert_eq!(
            lenient(l).as_deref(),
            Ok(&**l),
            "lenient fixed point: {raw:?}"
        );
        for bad in ["/./", "/../"] {
            assert!(!l.contains(bad), "{raw:?} -> lenient {l:?}: holds {bad:?}");
        }
        // What an upstream reads is itself canonical (or kept as written when only a
        // strict reading refuses it).
        let read = interpreted(l);
        if let Ok(again) = canonical(&read) {
            assert_eq!(*again, *read, "interpreted is canonical: {raw:?} -> {l:?}");
        }
    }

    // Whatever the lookup phase forwards, a decoding upstream reads on the same route.
    if let Some((route, forwarded)) = lookup_phase(raw) {
        let read = upstream_reads(&forwarded);
        let read_route = route_of(&read);
        assert_eq!(
            route, read_route,
            "{raw:?} is forwarded to {route} as {forwarded:?}, which an upstream reads as \
             {read:?} ({read_route})"
        );
    }

    let Ok(c) = strict else {
        return;
    };
    assert_canonical_shape(raw, &c);
    assert_eq!(
        canonical(&c).as_deref(),
        Ok(&*c),
        "canonical fixed point: {raw:?}"
    );
    // A canonical path has nothing left for an upstream to interpret.
    assert_eq!(interpreted(&c), *c, "interpreted(canonical): {raw:?}");

    let route = route_of(&c);
    for prefix in PREFIXES {
        let within = inside(&c, prefix);
        assert_eq!(
            route == prefix,
            within,
            "{raw:?} canonicalizes to {c:?}, routed to {route}"
        );
        if within {
            assert!(
                inside(&interpreted(&c), prefix),
                "{raw:?} -> {c:?} is read outside {prefix}"
            );
        }
    }
});
