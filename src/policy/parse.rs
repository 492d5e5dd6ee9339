//! Document → compiled rules. A document is a rule object (which may hold both `allow`
//! and `deny`) or a list of them; each action holds operators, each operator a non-empty
//! list of criteria or nested operators. Every refusal names where it happened.

use std::fmt::Write as _;

use serde_json::Value;

use super::PolicyError;
use super::criteria::Criterion;
use super::node::{Node, Op};

/// A location in the document, such as `[1].allow.and[0].groups`; the root is `$`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loc(String);

impl Loc {
    pub(crate) fn key(&self, k: &str) -> Loc {
        let mut s = self.0.clone();
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(k);
        Loc(s)
    }

    pub(crate) fn index(&self, i: usize) -> Loc {
        let mut s = self.0.clone();
        let _ = write!(s, "[{i}]");
        Loc(s)
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> PolicyError {
        PolicyError {
            location: if self.0.is_empty() {
                "$".to_owned()
            } else {
                self.0.clone()
            },
            message: message.into(),
        }
    }
}

/// A short description of a JSON value's type for error messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The compiled top-level terms: one per operator of every rule, by action.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub allow: Vec<Node>,
    pub deny: Vec<Node>,
}

pub(crate) fn compile_document(doc: &Value) -> Result<Rules, PolicyError> {
    let root = Loc::default();
    let mut rules = Rules::default();
    match doc {
        Value::Object(_) => compile_rule(doc, &root, &mut rules)?,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                compile_rule(item, &root.index(i), &mut rules)?;
            }
        }
        other => {
            return Err(root.error(format!(
                "expected a rule or a list of rules, got {}",
                describe(other)
            )));
        }
    }
    Ok(rules)
}

fn compile_rule(v: &Value, loc: &Loc, rules: &mut Rules) -> Result<(), PolicyError> {
    let Value::Object(obj) = v else {
        return Err(loc.error(format!(
            "expected a rule object with allow or deny, got {}",
            describe(v)
        )));
    };
    if obj.is_empty() {
        return Err(loc.error("empty rule; expected allow or deny"));
    }
    for (action, body) in obj {
        let at = loc.key(action);
        let terms = match action.as_str() {
            "allow" => &mut rules.allow,
            "deny" => &mut rules.deny,
            other => {
                return Err(at.error(format!("unknown key {other:?}; expected allow or deny")));
            }
        };
        let Value::Object(ops) = body else {
            return Err(at.error(format!(
                "expected an object with and, or, not or nor, got {}",
                describe(body)
            )));
        };
        if ops.is_empty() {
            return Err(at.error("no operators; expected and, or, not or nor"));
        }
        for (key, criteria) in ops {
            let at = at.key(key);
            let Some(op) = Op::from_key(key) else {
                return Err(at.error(format!(
                    "unknown operator {key:?}; expected and, or, not or nor"
                )));
            };
            terms.push(compile_op(op, criteria, &at)?);
        }
    }
    Ok(())
}

fn compile_op(op: Op, v: &Value, loc: &Loc) -> Result<Node, PolicyError> {
    let Value::Array(items) = v else {
        return Err(loc.error(format!("expected a list of criteria, got {}", describe(v))));
    };
    if items.is_empty() {
        return Err(loc.error("empty operator; expected at least one criterion"));
    }
    let mut children = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        children.push(compile_item(item, &loc.index(i))?);
    }
    Ok(Node::Op(op, children.into_boxed_slice()))
}

/// One element of an operator list: `{criterion: data}` or a nested `{and: [...]}`.
fn compile_item(v: &Value, loc: &Loc) -> Result<Node, PolicyError> {
    let Value::Object(obj) = v else {
        return Err(loc.error(format!(
            "expected a criterion object such as {{email: ...}}, got {}",
            describe(v)
        )));
    };
    let mut entries = obj.iter();
    let (Some((key, data)), None) = (entries.next(), entries.next()) else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        return Err(loc.error(format!(
            "a criterion must have exactly one key, found {} ({}); put each criterion in its own list item",
            keys.len(),
            keys.join(", ")
        )));
    };
    let at = loc.key(key);
    match Op::from_key(key) {
        Some(op) => compile_op(op, data, &at),
        None => Ok(Node::Criterion(Criterion::compile(key, data, &at)?)),
    }
}
