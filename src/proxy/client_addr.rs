//! Who the client is behind a load balancer: the PROXY protocol header (v1 and v2) a
//! load balancer may put in front of a connection, and the client address of a request
//! from the connection's address plus `X-Forwarded-For`, as Pomerium (Envoy) reads them.
//!
//! Both are pure: [`parse_proxy_header`] looks at the bytes read so far and says
//! "need more", "here is the header and its length" or why the bytes are no PROXY
//! header; [`client_ip`] picks the address. The server reads the bytes and closes
//! connections whose header is missing or invalid (fail closed: a listener set to
//! expect PROXY never falls back to the load balancer's own address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack listener reports
/// for IPv4 peers) as the IPv4 address, so IPv4 `source_ip` ranges match them.
pub use crate::routes::reach::canonical;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The longest v1 header, `\r\n` included (the protocol's own limit).
pub const V1_MAX: usize = 107;
/// The v2 signature (12 bytes), then version/command, family/transport and length.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// A PROXY header, read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The original client, or `None` when the header names none (v1 `UNKNOWN`, v2
    /// `LOCAL` such as a load balancer's health check, an unspecified or Unix
    /// family): the connection's own peer is the client then.
    pub source: Option<SocketAddr>,
    /// The header's length in bytes: the stream's own data starts after it. For v2
    /// this may be more than the bytes parsed (TLVs the caller skips).
    pub len: usize,
}

/// What the bytes read so far are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A prefix of a valid header: read more.
    Incomplete,
    Header(ProxyHeader),
}

/// Why a connection that had to start with a PROXY header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header (is the load balancer set to send PROXY protocol?)")]
    Missing,
    #[error("invalid PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("invalid PROXY v2 header: {0}")]
    V2(&'static str),
}

/// Parses the PROXY header at the start of `buf` (v1 text or v2 binary). Never reads
/// past [`V1_MAX`] bytes for v1, or for v2 past the fixed 16 and at most the 216 of a
/// pair of Unix socket paths (TLVs after the addresses are skipped unread); refuses
/// anything that is not a prefix of a valid header as soon as it can tell.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    if is_prefix_either_way(buf, V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(Parsed::Incomplete)
        } else {
            parse_v2(buf)
        };
    }
    if is_prefix_either_way(buf, V1_PREFIX) {
        return if buf.len() < V1_PREFIX.len() {
            Ok(Parsed::Incomplete)
        } else {
            parse_v1(buf)
        };
    }
    Err(ProxyError::Missing)
}

/// Whether the shorter of `a` and `b` starts the longer.
fn is_prefix_either_way(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1("longer than 107 bytes"))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ProxyError::V1("line does not end with CRLF"));
    }
    let line = &window[V1_PREFIX.len()..lf - 1];
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::V1("not ASCII"))?;
    let mut parts = line.split(' ');
    let family = parts.next().unwrap_or("");
    let source = match family {
        // The sender does not know the addresses; whatever follows is ignored.
        "UNKNOWN" => None,
        "TCP4" | "TCP6" => {
            let fields: Vec<&str> = parts.collect();
            let [src, dst, sport, dport] = fields[..] else {
                return Err(ProxyError::V1("expected source, destination and two ports"));
            };
            let (src, dst) = if family == "TCP4" {
                (IpAddr::V4(v1_ipv4(src)?), IpAddr::V4(v1_ipv4(dst)?))
            } else {
                (IpAddr::V6(v1_ipv6(src)?), IpAddr::V6(v1_ipv6(dst)?))
            };
            let _ = dst;
            let sport = v1_port(sport)?;
            v1_port(dport)?;
            Some(SocketAddr::new(canonical(src), sport))
        }
        _ => return Err(ProxyError::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Header(ProxyHeader {
        source,
        len: lf + 1,
    }))
}

fn v1_ipv4(s: &str) -> Result<Ipv4Addr, ProxyError> {
    s.parse().map_err(|_| ProxyError::V1("bad IPv4 address"))
}

fn v1_ipv6(s: &str) -> Result<Ipv6Addr, ProxyError> {
    s.parse().map_err(|_| ProxyError::V1("bad IPv6 address"))
}

/// A decimal port, 0–65535, without leading zeros or signs.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let ok = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(ProxyError::V1("bad port"));
    }
    s.parse().map_err(|_| ProxyError::V1("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < 16 {
        // Validate what is there already, so garbage is refused early.
        if let Some(&vc) = buf.get(12) {
            v2_command(vc)?;
        }
        if let Some(&ft) = buf.get(13) {
            v2_family(ft)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let local = v2_command(buf[12])?;
    let family = v2_family(buf[13])?;
    let declared = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + declared;
    if local {
        // A connection of the load balancer's own (health checks): no addresses.
        return Ok(Parsed::Header(ProxyHeader { source: None, len }));
    }
    let need = match family {
        Family::Inet => 12,
        Family::Inet6 => 36,
        Family::Unix => 216,
        Family::Unspec => 0,
    };
    if declared < need {
        return Err(ProxyError::V2(
            "address block shorter than its family needs",
        ));
    }
    if buf.len() < 16 + need {
        return Ok(Parsed::Incomplete);
    }
    let a = &buf[16..16 + need];
    let source = match family {
        Family::Inet => {
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        Family::Inet6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = canonical(IpAddr::V6(Ipv6Addr::from(octets)));
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(ip, port))
        }
        // No IP to speak of: the connection's own peer stands.
        Family::Unix | Family::Unspec => None,
    };
    Ok(Parsed::Header(ProxyHeader { source, len }))
}

enum Family {
    Unspec,
    Inet,
    Inet6,
    Unix,
}

/// `true` for LOCAL, `false` for PROXY.
fn v2_command(b: u8) -> Result<bool, ProxyError> {
    if b >> 4 != 2 {
        return Err(ProxyError::V2("version is not 2"));
    }
    match b & 0x0f {
        0 => Ok(true),
        1 => Ok(false),
        _ => Err(ProxyError::V2("command is not LOCAL or PROXY")),
    }
}

fn v2_family(b: u8) -> Result<Family, ProxyError> {
    if b & 0x0f > 2 {
        return Err(ProxyError::V2("transport is not UNSPEC, STREAM or DGRAM"));
    }
    match b >> 4 {
        0 => Ok(Family::Unspec),
        1 => Ok(Family::Inet),
        2 => Ok(Family::Inet6),
        3 => Ok(Family::Unix),
        _ => Err(ProxyError::V2(
            "address family is not UNSPEC, INET, INET6 or UNIX",
        )),
    }
}

/// The client address of a request, as Envoy computes its "trusted client address"
/// with `use_remote_address: true` (what Pomerium configures) and
/// `xff_num_trusted_hops: N`:
/// - `N == 0`: `remote`, the connection's client (the PROXY source, or the peer);
///   `X-Forwarded-For` is never read.
/// - `N > 0`: the Nth address from the right of `X-Forwarded-For` as received (all
///   its fields, in order). With fewer than N addresses, or when that entry is not an
///   IP address, `remote` again — never the leftmost entry, which a client can write.
///
/// Entries may carry a port (`192.0.2.1:443`, `[2001:db8::1]:443`, as Azure
/// Application Gateway writes them); it is ignored.
pub fn client_ip(remote: IpAddr, headers: &HeaderMap, trusted_hops: u32) -> IpAddr {
    if trusted_hops == 0 {
        return remote;
    }
    nth_from_right(headers.get_all(X_FORWARDED_FOR).iter(), trusted_hops).unwrap_or(remote)
}

fn nth_from_right<'a>(
    values: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    n: u32,
) -> Option<IpAddr> {
    let mut left = n;
    for value in values.rev() {
        for entry in value.as_bytes().rsplit(|&b| b == b',') {
            left -= 1;
            if left == 0 {
                return parse_xff_entry(entry);
            }
        }
    }
    None
}

fn parse_xff_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    // `[2001:db8::1]` without a port.
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| canonical(IpAddr::V6(ip)))
}

impl super::ConnInfo {
    /// This request's client address: [`client_ip`] over the connection's client and
    /// the request's `X-Forwarded-For`, with the configured trusted hops. Reads no
    /// header when `xff_num_trusted_hops` is 0.
    pub fn client_ip(&self, headers: &HeaderMap) -> IpAddr {
        client_ip(self.client, headers, self.xff_trusted_hops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(cmd);
        out.push(fam);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn inet_body(tlvs: &[u8]) -> Vec<u8> {
        let mut b = vec![203, 0, 113, 7, 10, 0, 0, 1];
        b.extend_from_slice(&51234u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b.extend_from_slice(tlvs);
        b
    }

    fn inet6_body(src: Ipv6Addr) -> Vec<u8> {
        let mut b = src.octets().to_vec();
        b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        b.extend_from_slice(&8443u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    #[test]
    fn v1_headers() {
        let ok: &[(&[u8], Option<SocketAddr>, usize)] = &[
            (
                b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET",
                sa("203.0.113.7:51234"),
                43,
            ),
            (
                b"PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n",
                sa("[2001:db8::7]:1"),
                42,
            ),
            (
                b"PROXY TCP6 ::ffff:198.51.100.2 ::1 0 443\r\n",
                sa("198.51.100.2:0"),
                42,
            ),
            (b"PROXY UNKNOWN\r\n\x16\x03", None, 15),
            (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None, 35),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65535 65535\r\n",
                sa("1.2.3.4:65535"),
                40,
            ),
        ];
        for (input, source, len) in ok {
            let got = parse_proxy_header(input);
            assert_eq!(
                got,
                Ok(Parsed::Header(ProxyHeader {
                    source: *source,
                    len: *len
                })),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let bad: &[&[u8]] = &[
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 443\r\n",
            b"PROXY TCP6 203.0.113.7 2001:db8::1 1 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 0443 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 +44 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2 3\r\n",
            b"PROXY TCP4  203.0.113.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.07 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 256.0.0.1 10.0.0.1 1 2\r\n",
            b"PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n",
            b"PROXY tcp4 203.0.113.7 10.0.0.1 1 2\r\n",
            b"PROXY \xff\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        ];
        for input in bad {
            assert!(
                matches!(parse_proxy_header(input), Err(ProxyError::V1(_))),
                "{}: {:?}",
                String::from_utf8_lossy(input),
                parse_proxy_header(input)
            );
        }
        // 107 bytes without a line end: too long, never read further.
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(200, b'a');
        assert_eq!(
            parse_proxy_header(&long),
            Err(ProxyError::V1("longer than 107 bytes"))
        );
        assert_eq!(parse_proxy_header(&long[..106]), Ok(Parsed::Incomplete));
        // The longest valid header fits exactly.
        let mut longest = b"PROXY UNKNOWN ".to_vec();
        longest.resize(105, b'a');
        longest.extend_from_slice(b"\r\n");
        assert_eq!(longest.len(), V1_MAX);
        assert!(matches!(
            parse_proxy_header(&longest),
            Ok(Parsed::Header(ProxyHeader { len: 107, .. }))
        ));
    }

    #[test]
    fn v2_headers() {
        let mapped: Ipv6Addr = "::ffff:192.0.2.9".parse().unwrap();
        let cases: Vec<(Vec<u8>, Result<Parsed, ProxyError>)> = vec![
            (
                v2(0x21, 0x11, &inet_body(&[])),
                Ok(Parsed::Header(ProxyHeader {
                    source: sa("203.0.113.7:51234"),
                    len: 28,
                })),
            ),
            // TLVs (AWS NLB's VPC endpoint ID) are skipped: `len` covers them.
            (
                v2(0x21, 0x11, &inet_body(&[0xea, 0, 3, 1, 2, 3])),
                Ok(Parsed::Header(ProxyHeader {
                    source: sa("203.0.113.7:51234"),
                    len: 34,
                })),
            ),
            (
                v2(0x21, 0x21, &inet6_body("2001:db8::7".parse().unwrap())),
                Ok(Parsed::Header(ProxyHeader {
                    source: sa("[2001:db8::7]:8443"),
                    len: 52,
                })),
            ),
            (
                v2(0x21, 0x21, &inet6_body(mapped)),
                Ok(Parsed::Header(ProxyHeader {
                    source: sa("192.0.2.9:8443"),
                    len: 52,
                })),
            ),
            // LOCAL (health checks): the peer is the client, addresses ignored.
            (
                v2(0x20, 0x00, &[]),
                Ok(Parsed::Header(ProxyHeader {
                    source: None,
                    len: 16,
                })),
            ),
            (
                v2(0x20, 0x11, &inet_body(&[])),
                Ok(Parsed::Header(ProxyHeader {
                    source: None,
                    len: 28,
                })),
            ),
            (
                v2(0x21, 0x00, &[9, 9]),
                Ok(Parsed::Header(ProxyHeader {
                    source: None,
                    len: 18,
                })),
            ),
            (
                v2(0x21, 0x31, &[0; 216]),
                Ok(Parsed::Header(ProxyHeader {
                    source: None,
                    len: 232,
                })),
            ),
            // Invalid.
            (
                v2(0x11, 0x11, &inet_body(&[])),
                Err(ProxyError::V2("version is not 2")),
            ),
            (
                v2(0x22, 0x11, &inet_body(&[])),
                Err(ProxyError::V2("command is not LOCAL or PROXY")),
            ),
            (
                v2(0x21, 0x41, &inet_body(&[])),
                Err(ProxyError::V2(
                    "address family is not UNSPEC, INET, INET6 or UNIX",
                )),
            ),
            (
                v2(0x21, 0x13, &inet_body(&[])),
                Err(ProxyError::V2("transport is not UNSPEC, STREAM or DGRAM")),
            ),
            (
                v2(0x21, 0x11, &[1, 2, 3, 4]),
                Err(ProxyError::V2(
                    "address block shorter than its family needs",
                )),
            ),
            (
                v2(0x21, 0x21, &inet_body(&[])),
                Err(ProxyError::V2(
                    "address block shorter than its family needs",
                )),
            ),
        ];
        for (input, want) in &cases {
            assert_eq!(&parse_proxy_header(input), want, "{input:?}");
            // Every proper prefix is incomplete or already has the same verdict (a
            // header once its addresses are in: the caller skips the TLVs).
            for cut in 0..input.len() {
                let got = parse_proxy_header(&input[..cut]);
                assert!(
                    got == Ok(Parsed::Incomplete) || &got == want,
                    "{input:?} cut {cut}: {got:?}"
                );
                if cut < 16 {
                    assert!(!matches!(got, Ok(Parsed::Header(_))), "{input:?} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn not_proxy_at_all() {
        let cases: &[&[u8]] = &[
            b"\x16\x03\x01\x02\x00", // a TLS ClientHello
            b"GET / HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n",
            b"proxy TCP4",
            b"PROXYTCP4",
            b"\r\n\r\n\0\r\nQUIX\n",
            b"\r\n\r\nx",
        ];
        for input in cases {
            assert_eq!(
                parse_proxy_header(input),
                Err(ProxyError::Missing),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        for prefix in [&b"P"[..], b"PROX", b"\r\n", b"\r\n\r\n\0\r\nQU"] {
            assert_eq!(parse_proxy_header(prefix), Ok(Parsed::Incomplete));
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes() {
        // A cheap deterministic sweep: every prefix of noisy inputs built around both
        // signatures.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            let mut buf = match round % 3 {
                0 => V2_SIGNATURE.to_vec(),
                1 => V1_PREFIX.to_vec(),
                _ => Vec::new(),
            };
            for _ in 0..(round % 260) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.push(seed as u8);
            }
            for cut in 0..=buf.len() {
                if let Ok(Parsed::Header(h)) = parse_proxy_header(&buf[..cut]) {
                    assert!(h.len >= 15);
                }
            }
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn client_address_from_forwarded_for() {
        let peer: IpAddr = "192.0.2.5".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let chain = "203.0.113.128, 203.0.113.10, 203.0.113.1";
        let cases: &[(&[&str], u32, IpAddr)] = &[
            // Envoy's examples (use_remote_address: true).
            (&[chain], 0, peer),
            (&[chain], 2, ip("203.0.113.10")),
            (&[chain], 1, ip("203.0.113.1")),
            (&[chain], 3, ip("203.0.113.128")),
            // Fewer addresses than trusted hops: the peer, not the leftmost entry.
            (&[chain], 4, peer),
            (&[], 1, peer),
            (&[""], 1, peer),
            // Fields of several header lines read as one list, in order.
            (
                &["198.51.100.1, 198.51.100.2", "198.51.100.3"],
                2,
                ip("198.51.100.2"),
            ),
            (
                &["198.51.100.1", "198.51.100.2,198.51.100.3"],
                3,
                ip("198.51.100.1"),
            ),
            // Spaces and tabs around entries; ports; bracketed IPv6; mapped IPv4.
            (&["1.1.1.1,\t 198.51.100.9 "], 1, ip("198.51.100.9")),
            (&["198.51.100.9:443"], 1, ip("198.51.100.9")),
            (&["[2001:db8::9]:443"], 1, ip("2001:db8::9")),
            (&["[2001:db8::9]"], 1, ip("2001:db8::9")),
            (&["2001:db8::9"], 1, ip("2001:db8::9")),
            (&["::ffff:198.51.100.9"], 1, ip("198.51.100.9")),
            // The chosen entry is no address: the peer (never a neighbour).
            (&["198.51.100.1, unknown"], 1, peer),
            (&["198.51.100.1, _hidden"], 1, peer),
            (&["198.51.100.1,"], 1, peer),
            (&["198.51.100.1, 198.51.100.2 198.51.100.3"], 1, peer),
            (&["198.51.100.1, 2001:db8::1:443"], 1, ip("2001:db8::1:443")),
            (&[chain], u32::MAX, peer),
        ];
        for (values, hops, want) in cases {
            assert_eq!(
                client_ip(peer, &xff(values), *hops),
                *want,
                "{values:?} hops {hops}"
            );
        }
        // Non-UTF-8 bytes in a header value: the peer.
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.1, \xff").unwrap(),
        );
        assert_eq!(client_ip(peer, &h, 1), peer);
        assert_eq!(client_ip(peer, &h, 2), ip("198.51.100.1"));
    }
}
