//! The compiled tree: operators over criteria, evaluated the way Pomerium's generated
//! rego merges `[value, reasons]` results, so the reasons (and with them the sign-in
//! decision) come out the same.

use super::Input;
use super::criteria::{Criterion, Verdict};
use super::reason::Reasons;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// All true.
    And,
    /// Any true.
    Or,
    /// None true: PPL's `not` is a NOR.
    Not,
    /// Not all true: PPL's `nor` is a NAND.
    Nor,
}

impl Op {
    pub(crate) fn from_key(key: &str) -> Option<Op> {
        Some(match key {
            "and" => Op::And,
            "or" => Op::Or,
            "not" => Op::Not,
            "nor" => Op::Nor,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Criterion(Criterion),
    Op(Op, Box<[Node]>),
}

impl Node {
    /// Every child is evaluated (no short-circuit): the reasons of all of them can matter.
    pub(crate) fn evaluate(&self, input: &Input<'_>) -> Verdict {
        match self {
            Node::Criterion(c) => c.evaluate(input),
            Node::Op(op, children) => {
                let results = children.iter().map(|c| c.evaluate(input));
                match op {
                    Op::And => merge_and(results),
                    Op::Or => merge_or(results),
                    Op::Not => merge_and(results.map(invert)),
                    Op::Nor => merge_or(results.map(invert)),
                }
            }
        }
    }
}

fn invert(v: Verdict) -> Verdict {
    Verdict {
        value: !v.value,
        reasons: v.reasons,
    }
}

/// `merge_with_and`: true with the reasons of all when all are true, else false with
/// the reasons of the false ones.
fn merge_and(results: impl Iterator<Item = Verdict>) -> Verdict {
    let (mut all_true, mut true_reasons, mut false_reasons) =
        (true, Reasons::EMPTY, Reasons::EMPTY);
    for r in results {
        if r.value {
            true_reasons = true_reasons.union(r.reasons);
        } else {
            all_true = false;
            false_reasons = false_reasons.union(r.reasons);
        }
    }
    Verdict {
        value: all_true,
        reasons: if all_true {
            true_reasons
        } else {
            false_reasons
        },
    }
}

/// `merge_with_or`: true with the reasons of the true ones when any is true, else false
/// with the reasons of all. No results at all is `false` with no reasons.
pub(crate) fn merge_or(results: impl Iterator<Item = Verdict>) -> Verdict {
    let (mut any_true, mut true_reasons, mut false_reasons) =
        (false, Reasons::EMPTY, Reasons::EMPTY);
    for r in results {
        if r.value {
            any_true = true;
            true_reasons = true_reasons.union(r.reasons);
        } else {
            false_reasons = false_reasons.union(r.reasons);
        }
    }
    Verdict {
        value: any_true,
        reasons: if any_true {
            true_reasons
        } else {
            false_reasons
        },
    }
}
