//! PPL matchers: the string matcher (`is`, `not`, `starts_with`, `ends_with`, `contains`,
//! `in`, `not_in`) and the string-list matcher (`has`, `is`, `exclude`), compiled from
//! their document form. Several keys under one matcher must all hold.

use serde_json::Value;

use super::PolicyError;
use super::parse::{Loc, describe};

/// A compiled string matcher: every test must hold.
#[derive(Debug, Clone)]
pub(crate) struct StringMatcher {
    tests: Box<[StringTest]>,
}

#[derive(Debug, Clone)]
enum StringTest {
    Is(Box<str>),
    Not(Box<str>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Contains(Box<str>),
    /// Sorted and deduplicated, for binary search.
    In(Box<[Box<str>]>),
    NotIn(Box<[Box<str>]>),
}

impl StringMatcher {
    /// `is: value`.
    pub(crate) fn is(value: &str) -> Self {
        StringMatcher {
            tests: Box::new([StringTest::Is(value.into())]),
        }
    }

    /// A bare string means `is`; an object holds one or more matcher keys.
    pub(crate) fn compile(v: &Value, loc: &Loc) -> Result<Self, PolicyError> {
        let tests = match v {
            Value::String(s) => vec![StringTest::Is(s.as_str().into())],
            Value::Object(obj) => {
                if obj.is_empty() {
                    return Err(loc.error(
                        "empty string matcher; expected one of is, not, starts_with, ends_with, contains, in, not_in",
                    ));
                }
                let mut tests = Vec::with_capacity(obj.len());
                for (k, v) in obj {
                    let at = loc.key(k);
                    tests.push(match k.as_str() {
                        "is" => StringTest::Is(string(v, &at)?),
                        "not" => StringTest::Not(string(v, &at)?),
                        "starts_with" => StringTest::StartsWith(string(v, &at)?),
                        "ends_with" => StringTest::EndsWith(string(v, &at)?),
                        "contains" => StringTest::Contains(string(v, &at)?),
                        "in" => StringTest::In(string_set(v, &at)?),
                        "not_in" => StringTest::NotIn(string_set(v, &at)?),
                        other => {
                            return Err(at.error(format!(
                                "unknown string matcher {other:?}; expected one of is, not, starts_with, ends_with, contains, in, not_in"
                            )));
                        }
                    });
                }
                tests
            }
            other => {
                return Err(loc.error(format!(
                    "expected a string or a string matcher object, got {}",
                    describe(other)
                )));
            }
        };
        Ok(StringMatcher {
            tests: tests.into_boxed_slice(),
        })
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        self.tests.iter().all(|t| match t {
            StringTest::Is(x) => s == &**x,
            StringTest::Not(x) => s != &**x,
            StringTest::StartsWith(x) => s.starts_with(&**x),
            StringTest::EndsWith(x) => s.ends_with(&**x),
            StringTest::Contains(x) => s.contains(&**x),
            StringTest::In(set) => contains_sorted(set, s),
            StringTest::NotIn(set) => !contains_sorted(set, s),
        })
    }
}

fn contains_sorted(set: &[Box<str>], s: &str) -> bool {
    set.binary_search_by(|x| (**x).cmp(s)).is_ok()
}

fn string(v: &Value, loc: &Loc) -> Result<Box<str>, PolicyError> {
    match v {
        Value::String(s) => Ok(s.as_str().into()),
        other => Err(loc.error(format!("expected a string, got {}", describe(other)))),
    }
}

fn string_set(v: &Value, loc: &Loc) -> Result<Box<[Box<str>]>, PolicyError> {
    let Value::Array(items) = v else {
        return Err(loc.error(format!("expected a list of strings, got {}", describe(v))));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(string(item, &loc.index(i))?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out.into_boxed_slice())
}

/// A value a list element is compared with. Groups only hold strings; claims may be
/// numbers or booleans too, compared with JSON claim values of the same type.
#[derive(Debug, Clone)]
pub(crate) enum Scalar {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
}

/// Something a list matcher can look through: group names or claim values.
pub(crate) trait Element {
    fn equals(&self, s: &Scalar) -> bool;
}

impl Element for String {
    fn equals(&self, s: &Scalar) -> bool {
        matches!(s, Scalar::Str(x) if **x == **self)
    }
}

impl Element for Value {
    fn equals(&self, s: &Scalar) -> bool {
        match (self, s) {
            (Value::String(v), Scalar::Str(x)) => v.as_str() == &**x,
            (Value::Number(v), Scalar::Num(x)) => v.as_f64() == Some(*x),
            (Value::Bool(v), Scalar::Bool(x)) => v == x,
            _ => false,
        }
    }
}

/// A compiled string-list matcher: every test must hold.
#[derive(Debug, Clone)]
pub(crate) struct ListMatcher {
    tests: Box<[ListTest]>,
}

#[derive(Debug, Clone)]
enum ListTest {
    /// Some element equals the value.
    Has(Scalar),
    /// The list is exactly the one value.
    Is(Scalar),
    /// No element equals the value.
    Exclude(Scalar),
}

impl ListMatcher {
    /// `has: value`.
    pub(crate) fn has(value: &str) -> Self {
        ListMatcher {
            tests: Box::new([ListTest::Has(Scalar::Str(value.into()))]),
        }
    }

    /// A bare scalar means `has`. With `strings_only`, numbers and booleans are refused
    /// (group names are strings; a YAML `1234` would never match one).
    pub(crate) fn compile(v: &Value, loc: &Loc, strings_only: bool) -> Result<Self, PolicyError> {
        let tests = match v {
            Value::Object(obj) => {
                if obj.is_empty() {
                    return Err(
                        loc.error("empty string list matcher; expected one of has, is, exclude")
                    );
                }
                let mut tests = Vec::with_capacity(obj.len());
                for (k, v) in obj {
                    let at = loc.key(k);
                    let test: fn(Scalar) -> ListTest = match k.as_str() {
                        "has" => ListTest::Has,
                        "is" => ListTest::Is,
                        "exclude" => ListTest::Exclude,
                        other => {
                            return Err(at.error(format!(
                                "unknown string list matcher {other:?}; expected one of has, is, exclude"
                            )));
                        }
                    };
                    tests.push(test(scalar(v, &at, strings_only)?));
                }
                tests
            }
            other => vec![ListTest::Has(scalar(other, loc, strings_only)?)],
        };
        Ok(ListMatcher {
            tests: tests.into_boxed_slice(),
        })
    }

    pub(crate) fn matches<E: Element>(&self, items: &[E]) -> bool {
        self.tests.iter().all(|t| match t {
            ListTest::Has(x) => items.iter().any(|e| e.equals(x)),
            ListTest::Is(x) => items.len() == 1 && items[0].equals(x),
            ListTest::Exclude(x) => !items.iter().any(|e| e.equals(x)),
        })
    }
}

fn scalar(v: &Value, loc: &Loc, strings_only: bool) -> Result<Scalar, PolicyError> {
    match v {
        Value::String(s) => Ok(Scalar::Str(s.as_str().into())),
        Value::Number(n) if !strings_only => match n.as_f64() {
            Some(x) => Ok(Scalar::Num(x)),
            None => Err(loc.error("number out of range")),
        },
        Value::Bool(b) if !strings_only => Ok(Scalar::Bool(*b)),
        other if strings_only => Err(loc.error(format!(
            "expected a string or a string list matcher object, got {} (quote it if it is a name)",
            describe(other)
        ))),
        other => Err(loc.error(format!(
            "expected a string, number, boolean or string list matcher object, got {}",
            describe(other)
        ))),
    }
}
