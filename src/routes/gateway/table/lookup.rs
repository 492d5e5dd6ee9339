//! Looking a request up: the most specific listener for its host, then that listener's
//! host groups in order (exact, wildcards, host-less; onto the last two only the rules
//! of namespaces that could name the host), and the first rule whose path, method,
//! headers and query parameters match.

use std::borrow::Cow;
use std::sync::Arc;

use super::super::{Answerers, NameStanding, suffix_covers};
use super::{GatewayRequest, GatewayTable, Path, Rule, Value};
use crate::routes::table::{Match, Route};

// === impl GatewayTable ===

impl GatewayTable {
    /// The rule for a request, and how much of its path the rule's prefix matched.
    pub fn lookup<'r>(&self, req: &GatewayRequest<'r>) -> Option<Match<'_>> {
        let host = req.host;
        let listener = self
            .listeners
            .iter()
            .find(|l| l.hostname.as_ref().is_none_or(|h| h.covers(host)))?;
        let mut query: Option<Query<'r>> = None;
        if let Some(m) = listener
            .exact
            .get(host)
            .and_then(|rules| first_match(rules, req, &mut query, None))
        {
            return Some(m);
        }
        // Onto wildcard and host-less rules: for a name with a standing, only the
        // rules of namespaces that could name it.
        let answerers = self
            .standings
            .of(host)
            .map(|s| s.answerers(&listener.gateway_namespace, listener.shares));
        let limit = match answerers {
            None | Some(Answerers::Any) => None,
            Some(Answerers::Nobody) => return None,
            Some(Answerers::Listed(s)) => Some(s),
        };
        for (suffix, rules) in &listener.wildcard {
            if suffix_covers(suffix, host)
                && let Some(m) = first_match(rules, req, &mut query, limit)
            {
                return Some(m);
            }
        }
        first_match(&listener.any, req, &mut query, limit)
    }

    /// Every route of this socket, in no particular order, once each.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        let mut seen = std::collections::HashSet::new();
        self.listeners
            .iter()
            .flat_map(|l| {
                l.exact
                    .values()
                    .flatten()
                    .chain(l.wildcard.iter().flat_map(|(_, r)| r))
                    .chain(&l.any)
            })
            .filter(move |r| seen.insert(Arc::as_ptr(&r.route)))
            .map(|r| &r.route)
    }
}

/// A request's query parameters, decoded once for the rules that match on them
/// (borrowed unless percent-encoded).
type Query<'r> = Vec<(Cow<'r, str>, Cow<'r, str>)>;

fn first_match<'t, 'r>(
    rules: &'t [Arc<Rule>],
    req: &GatewayRequest<'r>,
    query: &mut Option<Query<'r>>,
    limit: Option<&NameStanding>,
) -> Option<Match<'t>> {
    rules.iter().find_map(|r| {
        if limit.is_some_and(|s| !s.lists(&r.namespace)) {
            return None;
        }
        r.matches(req, query).map(|matched_len| Match {
            route: &r.route,
            matched_len,
        })
    })
}

impl Rule {
    /// The matched prefix length when the request matches.
    fn matches<'r>(
        &self,
        req: &GatewayRequest<'r>,
        query: &mut Option<Query<'r>>,
    ) -> Option<usize> {
        let path = req.path;
        let matched = match &self.path {
            Path::Exact(p) => (**p == *path).then_some(path.len()),
            Path::Prefix(p) => (path.starts_with(&**p)
                && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/'))
                .then_some(p.len()),
            Path::Regex(re) => re.is_match(path).then_some(path.len()),
        }?;
        if self.method.as_ref().is_some_and(|m| m != req.method) {
            return None;
        }
        for (name, want) in &self.headers {
            let mut values = req.headers.get_all(name).iter();
            let first = values.next()?;
            // Repeated headers are read as one comma-joined value (RFC 9110 §5.3).
            let mut value = Cow::Borrowed(first.to_str().ok()?);
            for v in values {
                let v = v.to_str().ok()?;
                let joined = value.to_mut();
                joined.push(',');
                joined.push_str(v);
            }
            if !want.matches(&value) {
                return None;
            }
        }
        if !self.query.is_empty() {
            let pairs = query.get_or_insert_with(|| parse_query(req.query.unwrap_or("")));
            for (name, want) in &self.query {
                // A repeated parameter: its first value counts.
                let value = pairs.iter().find(|(n, _)| **n == **name).map(|(_, v)| v)?;
                if !want.matches(value) {
                    return None;
                }
            }
        }
        Some(matched)
    }
}

impl Value {
    fn matches(&self, value: &str) -> bool {
        match self {
            Value::Exact(v) => **v == *value,
            Value::Regex(re) => re.is_match(value),
        }
    }
}

/// `a=1&b=%20` as decoded pairs; a name without `=` has an empty value.
fn parse_query(query: &str) -> Query<'_> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
