//! The PPL corpus (tests/data/ppl-corpus/corpus.json): policies and inputs with the
//! decision Pomerium's own authorize evaluator gave them, replayed through Portcullis.
//! Every case must agree with Pomerium, or be tagged with a documented difference and
//! then decide as the tag says (and, for a decision, as Pomerium did with just that
//! behaviour changed). e2e/ppl-corpus/generate makes the corpus; see its README.

use std::collections::{BTreeMap, BTreeSet};

use portcullis::api::policy::cli::eval_cli;
use serde::Deserialize;

const CORPUS: &str = include_str!("data/ppl-corpus/corpus.json");
const NOTE: &str = include_str!("data/ppl-corpus/README.md");
const GUIDE: &str = include_str!("../docs/migrating-from-pomerium.md");

#[derive(Deserialize)]
struct Corpus {
    pomerium_commit: String,
    counts: Counts,
    kinds: BTreeMap<String, String>,
    cases: Vec<Case>,
}

#[derive(Deserialize, PartialEq, Eq, Debug, Default)]
struct Counts {
    cases: usize,
    agreements: usize,
    differences: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
struct Case {
    id: usize,
    source: String,
    policy: String,
    input: serde_json::Value,
    pomerium: Decided,
    #[serde(default)]
    difference: Option<Difference>,
}

#[derive(Deserialize)]
struct Difference {
    kinds: Vec<String>,
    portcullis: Decided,
    #[serde(default)]
    pomerium_patched: Option<Decided>,
}

#[derive(Deserialize, Debug, Clone)]
struct Decided {
    outcome: String,
    reasons: Vec<String>,
}

impl Decided {
    /// Two refusals are the same whatever their messages; decisions need the same reasons.
    fn same(&self, other: &Decided) -> bool {
        if self.outcome == "error" || other.outcome == "error" {
            return self.outcome == other.outcome;
        }
        let sorted = |d: &Decided| d.reasons.iter().cloned().collect::<BTreeSet<_>>();
        self.outcome == other.outcome && sorted(self) == sorted(other)
    }
}

fn portcullis(case: &Case) -> Decided {
    match eval_cli(&case.policy, &case.input.to_string()) {
        Ok(text) => {
            let mut lines = text.lines().map(str::to_owned);
            Decided {
                outcome: lines.next().unwrap_or_default(),
                reasons: lines.collect(),
            }
        }
        Err(e) => {
            assert!(
                e.starts_with("invalid policy:"),
                "case {}: the input itself is refused: {e}",
                case.id
            );
            Decided {
                outcome: "error".into(),
                reasons: Vec::new(),
            }
        }
    }
}

fn corpus() -> Corpus {
    serde_json::from_str(CORPUS).expect("corpus.json parses")
}

#[test]
fn portcullis_decides_as_pomerium_but_for_documented_differences() {
    let corpus = corpus();
    let mut failures = Vec::new();
    let mut counts = Counts {
        cases: corpus.cases.len(),
        ..Counts::default()
    };
    for case in &corpus.cases {
        let got = portcullis(case);
        let at = format!(
            "case {} ({}): {}\n  input: {}",
            case.id, case.source, case.policy, case.input
        );
        // The guide's "same in both" policies must decide the same in both.
        if case.source.starts_with("docs/") && got.outcome != case.pomerium.outcome {
            failures.push(format!(
                "{at}\n  a migration guide policy decides {} here, {} in Pomerium",
                got.outcome, case.pomerium.outcome
            ));
        }
        let Some(diff) = &case.difference else {
            counts.agreements += 1;
            if !got.same(&case.pomerium) {
                failures.push(format!(
                    "{at}\n  Pomerium: {:?}\n  Portcullis: {got:?}\n  (no documented difference)",
                    case.pomerium
                ));
            }
            continue;
        };
        for kind in &diff.kinds {
            *counts.differences.entry(kind.clone()).or_default() += 1;
            if !corpus.kinds.contains_key(kind) {
                failures.push(format!("{at}\n  unknown difference {kind:?}"));
            }
        }
        if got.same(&case.pomerium) {
            failures.push(format!(
                "{at}\n  tagged {:?} but Portcullis now agrees with Pomerium ({got:?}): drop the tag",
                diff.kinds
            ));
        }
        if !got.same(&diff.portcullis) {
            failures.push(format!(
                "{at}\n  tagged {:?}: Portcullis decided {:?}, now {got:?}",
                diff.kinds, diff.portcullis
            ));
        }
        if let Some(patched) = &diff.pomerium_patched
            && !got.same(patched)
        {
            failures.push(format!(
                "{at}\n  Pomerium with {:?} changed decides {patched:?}, Portcullis {got:?}",
                diff.kinds
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        corpus.cases.len(),
        failures.join("\n")
    );
    assert_eq!(counts, corpus.counts, "the counts in corpus.json");
    println!(
        "PPL corpus (Pomerium {}): {} cases, {} agreements, {} documented differences (by kind {:?}), 0 undocumented",
        corpus.pomerium_commit,
        counts.cases,
        counts.agreements,
        counts.cases - counts.agreements,
        counts.differences
    );
}

/// The migration guide's "Policy differences" section names every kind of difference,
/// each kind has corpus cases, and the note beside the corpus gives its counts.
#[test]
fn every_difference_is_documented_and_has_cases() {
    let corpus = corpus();
    let section = GUIDE
        .split_once("\n## Policy differences\n")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .expect("docs/migrating-from-pomerium.md has a \"## Policy differences\" section");
    let tagged: BTreeSet<&str> = corpus
        .cases
        .iter()
        .filter_map(|c| c.difference.as_ref())
        .flat_map(|d| d.kinds.iter().map(String::as_str))
        .collect();
    for kind in corpus.kinds.keys() {
        assert!(
            section.contains(&format!("`{kind}`")),
            "the guide's Policy differences section does not name `{kind}`"
        );
        assert!(
            tagged.contains(kind.as_str()),
            "no corpus case shows {kind}"
        );
    }
    assert!(
        NOTE.contains(&corpus.pomerium_commit),
        "README.md names the Pomerium commit"
    );
    let line = format!(
        "{} cases: {} agreements",
        corpus.counts.cases, corpus.counts.agreements
    );
    assert!(NOTE.contains(&line), "README.md gives the counts ({line})");
}
