//! The config file as a YAML tree that remembers where every node was written, so that
//! validation can point at `config.yaml:12:5` rather than only at a key path.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a value came from: a line and column of the file, or an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// 1-based line and column in the file.
    File { line: u32, column: u32 },
    /// The value of this environment variable.
    Env(String),
    /// Not known (a default, or a node serde-saphyr could not place).
    Unknown,
}

/// A YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in file order; keys are scalars written as strings.
    Map(Vec<(Node, Node)>),
}

/// Parses one YAML document. Duplicate keys are refused (serde-saphyr's default), so a
/// second `policy:` cannot silently replace the first.
pub fn parse(text: &str) -> Result<Node, (Origin, String)> {
    if text.trim().is_empty() {
        return Ok(Node {
            value: Value::Map(Vec::new()),
            origin: Origin::File { line: 1, column: 1 },
        });
    }
    match serde_saphyr::from_str::<Spanned<Value>>(text) {
        Ok(s) => Ok(Node::from(s)),
        Err(e) => {
            let origin = e
                .location()
                .filter(|l| l.line() > 0)
                .map_or(Origin::Unknown, |l| Origin::File {
                    line: l.line() as u32,
                    column: l.column() as u32,
                });
            // Rendered without a source snippet: the snippet could echo a secret.
            let options = serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            };
            let message = e.without_snippet().render_with_options(options);
            Err((origin, strip_location_suffix(&message).to_string()))
        }
    }
}

/// serde-saphyr's plain messages end with ` at line L, column C`; we print the location
/// in front, compiler-style, so the suffix would only repeat it.
fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains("column") => message[..i].trim_end(),
        _ => message.trim_end(),
    }
}

impl From<Spanned<Value>> for Node {
    fn from(s: Spanned<Value>) -> Node {
        let line = s.referenced.line();
        let origin = if line == 0 {
            Origin::Unknown
        } else {
            Origin::File {
                line: line as u32,
                column: s.referenced.column() as u32,
            }
        };
        Node {
            value: s.value,
            origin,
        }
    }
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON, for the policy compiler (which takes `serde_json::Value`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    J::String(i.to_string())
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A scalar written as text: what a key is, or what an environment variable holds.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Follows a policy-style location (`[1].allow.and[0].groups`) as far as it goes
    /// and returns the origin of the deepest node reached.
    pub fn locate(&self, location: &str) -> Origin {
        let mut node = self;
        for step in location_steps(location) {
            let next = match (&node.value, step) {
                (Value::Seq(items), Step::Index(i)) => items.get(i),
                (Value::Map(entries), Step::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| key.scalar_text().as_deref() == Some(k))
                    .map(|(_, v)| v),
                // A one-rule document addressed as `[0]`: stay on the rule.
                (Value::Map(_), Step::Index(0)) => Some(node),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.origin.clone()
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn location_steps(location: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in location.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                steps.push(Step::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    steps
}

// === impl Deserialize for Value ===

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(Node::from(item));
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            entries.push((Node::from(key), Node::from(value)));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, column: u32) -> Origin {
        Origin::File { line, column }
    }

    #[test]
    fn nodes_carry_their_lines() {
        let n = parse("a: 1\nroutes:\n  - from: x\n    to: [y, z]\n").unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        assert_eq!(top[0].0.origin, at(1, 1));
        assert_eq!(top[0].1.value, Value::Int(1));
        let Value::Seq(routes) = &top[1].1.value else {
            panic!()
        };
        let Value::Map(r0) = &routes[0].value else {
            panic!()
        };
        assert_eq!(r0[1].0.origin, at(4, 5));
        assert_eq!(n.locate("routes[0].to[1]"), at(4, 13));
    }

    #[test]
    fn syntax_errors_carry_a_location_and_no_snippet() {
        let (origin, message) = parse("a: 1\nb: [x\nsecret: hunter2\n").unwrap_err();
        assert!(matches!(origin, Origin::File { .. }), "{origin:?}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains(" at line "), "{message}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let (origin, message) = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(origin, at(2, 1), "{message}");
    }
}
