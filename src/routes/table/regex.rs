//! Path regexes: compiled anchored and within size limits, once per distinct pattern
//! (a weak memo shared by the index's admission check and every table build).

use std::collections::HashMap;
use std::sync::Arc;

use regex_automata::meta::Regex;

/// Largest compiled form (the NFA, each direction) of one path regex. Ordinary path
/// patterns need a few KiB; Unicode classes cost more (`/(\w+)/(\w+)` about 110 KiB).
pub const PATH_REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Largest lazy-DFA cache one path regex may grow per searching thread.
pub const PATH_REGEX_CACHE_LIMIT: usize = 256 * 1024;
/// Longest path regex as written.
pub const PATH_REGEX_MAX_LEN: usize = 4096;

/// An anchored path regex within [`PATH_REGEX_SIZE_LIMIT`] and
/// [`PATH_REGEX_CACHE_LIMIT`]. The error says which limit, in words for an Event.
pub fn compile_path_regex(r: &str) -> Result<Regex, String> {
    if r.len() > PATH_REGEX_MAX_LEN {
        return Err(format!(
            "the pattern is {} bytes long; the limit is {PATH_REGEX_MAX_LEN}",
            r.len()
        ));
    }
    let config = regex_automata::meta::Config::new()
        .nfa_size_limit(Some(PATH_REGEX_SIZE_LIMIT))
        .onepass_size_limit(Some(PATH_REGEX_SIZE_LIMIT))
        .dfa_size_limit(Some(PATH_REGEX_SIZE_LIMIT))
        .hybrid_cache_capacity(PATH_REGEX_CACHE_LIMIT);
    Regex::builder()
        .configure(config)
        .build(&format!("^(?:{r})$"))
        .map_err(|e| match e.size_limit() {
            Some(limit) => format!(
                "`{r}` compiles to more than {} KiB (the limit per pattern); \
                 prefer ASCII classes such as [a-z0-9_] to \\w and \\d, and fewer repetitions",
                limit / 1024
            ),
            None => format!("`{r}` is not a valid regular expression: {e}"),
        })
}

/// Compiled path regexes that someone holds, by pattern: the index compiles an
/// Ingress' patterns to check their size, and the next table build takes those rather
/// than compiling them again. Weak: a pattern nobody uses any more is freed. A memo
/// of a pure function, not a source of truth.
static SHARED_REGEXES: std::sync::Mutex<SharedRegexes> = std::sync::Mutex::new(SharedRegexes {
    by_pattern: None,
    prune_at: 64,
});

struct SharedRegexes {
    by_pattern: Option<HashMap<Box<str>, std::sync::Weak<Regex>>>,
    /// Dead entries are dropped when the map reaches this size, which then doubles.
    prune_at: usize,
}

/// [`compile_path_regex`], through the shared memo: the compiled form someone already
/// holds, or a new one (`true`: compiled now).
pub fn shared_path_regex(pattern: &str) -> Result<(Arc<Regex>, bool), String> {
    let lock = || crate::sync::lock(&SHARED_REGEXES);
    if let Some(re) = lock()
        .by_pattern
        .as_ref()
        .and_then(|m| m.get(pattern))
        .and_then(std::sync::Weak::upgrade)
    {
        return Ok((re, false));
    }
    // Compiled outside the lock: a large pattern must not hold up other builds.
    let re = Arc::new(compile_path_regex(pattern)?);
    let mut shared = lock();
    let prune_at = shared.prune_at;
    let map = shared.by_pattern.get_or_insert_with(HashMap::new);
    map.insert(pattern.into(), Arc::downgrade(&re));
    if map.len() >= prune_at {
        map.retain(|_, w| w.strong_count() > 0);
        let live = map.len();
        shared.prune_at = (live * 2).max(64);
    }
    Ok((re, true))
}

/// How much memory a compiled path regex holds (its caches aside), for budgets.
pub fn path_regex_memory(re: &Regex) -> usize {
    re.memory_usage()
}
