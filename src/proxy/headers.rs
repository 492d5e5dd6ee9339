//! Header hygiene between client and upstream: hop-by-hop removal, spoofable identity
//! headers, forwarding headers and request IDs.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Forwarding headers a client could use to speak for Portcullis: removed before
/// Portcullis sets its own (`X-Forwarded-For`, `-Proto`, `-Host`, `-Port`, `X-Real-IP`).
const CLIENT_FORWARDING: [&str; 5] = [
    "forwarded",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
];
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Whether a header name is an identity header a client may not send: ours,
/// Pomerium's, oauth2-proxy's ([`crate::routes::reserved`], the one list), or one of
/// `extra` (the configured `jwt_claims_headers`), in either `-` or `_` spelling.
pub fn is_identity_header(name: &str, extra: &[HeaderName]) -> bool {
    crate::routes::reserved::identity_header(name)
        || extra
            .iter()
            .any(|e| crate::routes::reserved::same_name(name, e.as_str()))
}

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes every `Set-Cookie` of an upstream response that names a cookie of the
/// family `base` (any chunk, any port, any `Domain`), or names none (`=name=value`:
/// browsers keep such a cookie and send it back as `name=value`): an app may not plant
/// or overwrite a Portcullis credential. `Clear-Site-Data` loses `cookies` and `*`
/// (they would wipe the whole site's sessions). Returns how many cookies were removed.
pub fn drop_set_cookies(headers: &mut HeaderMap, base: &str) -> usize {
    strip_clear_site_cookies(headers);
    let ours = |v: &HeaderValue| {
        use crate::auth::cookies::{in_family, set_cookie_name};
        let name = set_cookie_name(v.as_bytes());
        // A comma cannot be in a cookie (RFC 6265 §4.1.1), only in an `Expires` date;
        // a client that splits a value on commas as folded headers (some have) would
        // read what follows one as another cookie: one of ours there counts too.
        name.is_empty()
            || in_family(name, base.as_bytes())
            || v.as_bytes().split(|b| *b == b',').skip(1).any(|piece| {
                let n = set_cookie_name(piece);
                !n.is_empty() && in_family(n, base.as_bytes())
            })
    };
    let total = headers.get_all(header::SET_COOKIE).iter().count();
    if total == 0 {
        return 0;
    }
    let dropped = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| ours(v))
        .count();
    if dropped > 0 {
        let kept: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter(|v| !ours(v))
            .cloned()
            .collect();
        headers.remove(header::SET_COOKIE);
        for v in kept {
            headers.append(header::SET_COOKIE, v);
        }
    }
    dropped
}

const CLEAR_SITE_DATA: HeaderName = HeaderName::from_static("clear-site-data");

fn strip_clear_site_cookies(headers: &mut HeaderMap) {
    let values = headers.get_all(&CLEAR_SITE_DATA);
    if values.iter().next().is_none() {
        return;
    }
    // Every value (a browser reads them as one list); one that is not text is dropped
    // whole, as are the types that clear cookies, whatever their case.
    let clears = |t: &str| {
        let t = t.trim();
        t.eq_ignore_ascii_case("\"cookies\"") || t == "\"*\""
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut changed = false;
    for v in values.iter() {
        let Ok(text) = v.to_str() else {
            changed = true;
            continue;
        };
        for t in text.split(',') {
            if clears(t) {
                changed = true;
            } else if !t.trim().is_empty() {
                kept.push(t.trim());
            }
        }
    }
    if !changed {
        return;
    }
    let (joined, empty) = (kept.join(", "), kept.is_empty());
    match HeaderValue::from_str(&joined) {
        Ok(v) if !empty => {
            headers.insert(CLEAR_SITE_DATA, v);
        }
        _ => {
            headers.remove(CLEAR_SITE_DATA);
        }
    }
}

/// Longest client-supplied request ID that is kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Removes hop-by-hop headers, including those the `Connection` header names. With
/// `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay for the upgrade handshake.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of them (or only `Connection: keep-alive`): one look at
    // each name decides whether anything must go.
    let any = headers.keys().any(|k| HOP_BY_HOP.contains(k));
    if !any && !keep_upgrade {
        return;
    }
    // Names listed in `Connection` go too. Each value is a cheap clone of the received
    // bytes, taken so the map can change while it is read; `Connection` itself goes
    // last, below.
    for i in 0.. {
        let Some(value) = headers.get_all(header::CONNECTION).iter().nth(i).cloned() else {
            break;
        };
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',').map(str::trim) {
            let keep = name.is_empty()
                || name.eq_ignore_ascii_case("connection")
                || (keep_upgrade && name.eq_ignore_ascii_case("upgrade"));
            if !keep {
                headers.remove(name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        if keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes every identity header a client may have sent, `extra` names included, and
/// the forwarding headers Portcullis speaks for.
pub fn strip_identity_headers_and(headers: &mut HeaderMap, extra: &[HeaderName]) {
    let spoofed = |k: &HeaderName| {
        is_identity_header(k.as_str(), extra) || CLIENT_FORWARDING.contains(&k.as_str())
    };
    if !headers.keys().any(spoofed) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|k| spoofed(k)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-Port` and `X-Real-IP` to Portcullis's own values.
pub fn set_forwarded_port_and_ip(headers: &mut HeaderMap, port: u16, client: std::net::IpAddr) {
    headers.insert(X_FORWARDED_PORT, port_value(port));
    let mut ip = Vec::with_capacity(39);
    write_ip(&mut ip, client);
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(ip)) {
        headers.insert(X_REAL_IP, v);
    }
}

/// `port` as a header value: a worker's requests nearly all name the same port, so its
/// value is made once per thread and shared.
fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((p, v)) if *p == port => v.clone(),
        _ => {
            let v = HeaderValue::from(port);
            *last = Some((port, v.clone()));
            v
        }
    })
}

/// Appends `ip` as text (IPv4 without the formatting machinery: once or twice a request).
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(out, "{ip}");
        }
    }
}

/// Whether an upgrade request asks for WebSocket (the only protocol Portcullis
/// tunnels: anything else, `h2c` included, would skip per-request policy).
pub fn upgrade_is_websocket(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    values.len() == 1 && values[0].eq_ignore_ascii_case("websocket")
}

/// The client's request ID when it is sane, else a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(|c| c.is_ascii_graphic())
        {
            return v.clone();
        }
    }
    let id: u128 = rand::random();
    let mut hex = [0u8; 32];
    for (i, c) in hex.iter_mut().enumerate() {
        *c = b"0123456789abcdef"[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&hex).expect("hex is a valid header value")
}

/// Sets `X-Forwarded-For` (appending the peer), `-Proto` (`https` on a TLS connection,
/// else `http`) and `-Host`.
pub fn set_forwarded(headers: &mut HeaderMap, peer: std::net::IpAddr, host: &str, tls: bool) {
    let prior = headers
        .get(&X_FORWARDED_FOR)
        .map(|v| v.as_bytes())
        .filter(|p| !p.trim_ascii().is_empty());
    let mut xff = Vec::with_capacity(prior.map_or(0, |p| p.len() + 2) + 39);
    if let Some(prior) = prior {
        xff.extend_from_slice(prior);
        xff.extend_from_slice(b", ");
    }
    write_ip(&mut xff, peer);
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    // The client's own `Host` value when it says the same (no copy).
    let same = headers
        .get(header::HOST)
        .filter(|h| h.as_bytes() == host.as_bytes())
        .cloned();
    if let Some(v) = same.or_else(|| HeaderValue::from_str(host).ok()) {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn upstreams_cannot_set_our_cookies() {
        let mut h = HeaderMap::new();
        for v in [
            "_portcullis=stolen; Domain=.example.com; Path=/",
            "_portcullis_3=x",
            "_portcullis_p8443=x; Secure",
            "_portcullis_authenticate=x",
            "__Host-_portcullis_nonce=x; Path=/; Secure",
            "__secure-_portcullis=x",
            " _portcullis =x",
            "theme=dark; Path=/",
            "_portcullisx=1",
            "portcullis=1",
            "=_portcullis=nameless; Domain=.example.com",
            " =__Host-_portcullis_nonce=x",
            "_portcullis",
            "theme=x, __Host-_portcullis_nonce=planted; Path=/",
            "late=1; Expires=Wed, 21 Oct 2099 07:28:00 GMT",
        ] {
            h.append(header::SET_COOKIE, HeaderValue::from_static(v));
        }
        h.insert(
            "clear-site-data",
            HeaderValue::from_static("\"cache\", \"cookies\""),
        );
        assert_eq!(drop_set_cookies(&mut h, "_portcullis"), 11);
        assert_eq!(h["clear-site-data"], "\"cache\"");
        let mut wipe = HeaderMap::new();
        wipe.insert("clear-site-data", HeaderValue::from_static("\"*\""));
        drop_set_cookies(&mut wipe, "_portcullis");
        assert!(wipe.get("clear-site-data").is_none());
        // Every value counts (a browser joins them), in any case; one that is not text
        // is dropped whole.
        for (values, want) in [
            (&["\"cache\"", "\"cookies\""][..], Some("\"cache\"")),
            (
                &["\"cache\"", " \"Cookies\" ,\"storage\""],
                Some("\"cache\", \"storage\""),
            ),
            (&["\"cache\"", "\"storage\""], None),
            (&["\"COOKIES\""], Some("")),
        ] {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("clear-site-data", HeaderValue::from_str(v).unwrap());
            }
            drop_set_cookies(&mut h, "_portcullis");
            let got: Vec<_> = h.get_all("clear-site-data").iter().collect();
            match want {
                None => assert_eq!(got.len(), values.len(), "{values:?}: untouched"),
                Some("") => assert!(got.is_empty(), "{values:?}: {got:?}"),
                Some(w) => assert_eq!(got, [w], "{values:?}"),
            }
        }
        let mut opaque = HeaderMap::new();
        opaque.append("clear-site-data", HeaderValue::from_static("\"cache\""));
        opaque.append(
            "clear-site-data",
            HeaderValue::from_bytes(b"\"cookies\", \"\xff\"").unwrap(),
        );
        drop_set_cookies(&mut opaque, "_portcullis");
        assert_eq!(opaque["clear-site-data"], "\"cache\"");
        let left: Vec<_> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            left,
            [
                "theme=dark; Path=/",
                "_portcullisx=1",
                "portcullis=1",
                "late=1; Expires=Wed, 21 Oct 2099 07:28:00 GMT"
            ]
        );
        let mut none = HeaderMap::new();
        assert_eq!(drop_set_cookies(&mut none, "_portcullis"), 0);
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn every_connection_header_is_read() {
        let mut h = map(&[
            ("connection", "Connection, X-A"),
            ("connection", "x-b"),
            ("x-a", "1"),
            ("x-b", "2"),
            ("x-c", "3"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-c"]);
    }

    #[test]
    fn upgrade_headers_survive_for_upgrades() {
        let mut h = map(&[
            ("connection", "Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
        ]);
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("x-secret").is_none());
    }

    #[test]
    fn spoofed_identity_headers_are_removed() {
        let mut h = map(&[
            ("x-portcullis-jwt-assertion", "forged"),
            ("X-Portcullis-Claim-Email", "ceo@example.com"),
            ("x-pomerium-jwt-assertion", "forged"),
            ("x-forwarded-email", "ceo@example.com"),
            ("x-forwarded-user", "ceo"),
            ("x-forwarded-groups", "admin"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        strip_identity_headers_and(&mut h, &[]);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-forwarded-for"]);
    }

    #[test]
    fn every_spelling_of_an_identity_header_goes() {
        let claim = HeaderName::from_static("x-email");
        let mut h = map(&[
            ("x_forwarded_email", "ceo@example.com"),
            ("X_Portcullis_Claim_User", "ceo"),
            ("x-auth-request-email", "ceo@example.com"),
            ("x-auth-request-groups", "admin"),
            ("x-email", "ceo@example.com"),
            ("x_email", "ceo@example.com"),
            ("forwarded", "for=1.2.3.4;host=admin"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-forwarded-prefix", "/admin"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-emails", "kept"),
            ("accept", "*/*"),
        ]);
        strip_identity_headers_and(&mut h, &[claim]);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-emails", "x-forwarded-for"]);
        set_forwarded_port_and_ip(&mut h, 8443, "192.0.2.1".parse().unwrap());
        assert_eq!(h["x-forwarded-port"], "8443");
        assert_eq!(h["x-real-ip"], "192.0.2.1");
    }

    #[test]
    fn only_websocket_upgrades_tunnel() {
        for (upgrade, ws) in [
            ("websocket", true),
            ("WebSocket", true),
            ("h2c", false),
            ("foo", false),
            ("websocket, h2c", false),
            ("", false),
        ] {
            assert_eq!(
                upgrade_is_websocket(&map(&[("upgrade", upgrade)])),
                ws,
                "{upgrade}"
            );
        }
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let fresh = request_id(&map(&[("x-request-id", &long)]));
        assert_eq!(fresh.len(), 32);
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn forwarded_headers_append_the_peer() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
        ]);
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "app.example.com",
            true,
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.9, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "app.example.com");
        // A plain-HTTP listener (a Gateway's, ACME) says so, whatever the client wrote.
        let mut plain = map(&[("x-forwarded-proto", "https")]);
        set_forwarded(
            &mut plain,
            "127.0.0.1".parse().unwrap(),
            "app.example.com",
            false,
        );
        assert_eq!(plain.get("x-forwarded-proto").unwrap(), "http");
    }

    #[test]
    fn addresses_and_ports_as_std_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "9.99.199.250",
            "::1",
            "2001:db8::7",
            "::ffff:10.1.2.3",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().into_bytes(), "{ip}");
        }
        for port in [443, 8443, 443, 1] {
            let mut h = HeaderMap::new();
            set_forwarded_port_and_ip(&mut h, port, "10.2.3.4".parse().unwrap());
            assert_eq!(
                h.get("x-forwarded-port").unwrap(),
                port.to_string().as_str()
            );
            assert_eq!(h.get("x-real-ip").unwrap(), "10.2.3.4");
        }
    }
}
