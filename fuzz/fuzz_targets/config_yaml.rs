//! Arbitrary text as a config file (no environment). Asserts: parsing never panics;
//! an error lists at least one problem and every problem names the file and a line
//! and column in it; a config that parses builds a routing table without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::api::config::Config;

const FILE: &str = "config.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, FILE, &|_| None) {
        Ok(config) => {
            let (table, _) = portcullis::api::routes::build(&config.model(), None);
            let _ = table.lookup("a.example.com", 443, "/");
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            for p in &e.problems {
                assert_eq!(p.file, FILE, "{p}");
                assert_eq!(p.env, None, "{p}");
                assert!(
                    p.line.is_some_and(|l| l > 0) && p.column.is_some_and(|c| c > 0),
                    "no location: {p}\n--- in ---\n{text}"
                );
                assert!(!p.message.is_empty(), "no message: {p:?}");
            }
            let _ = e.to_string();
        }
    }
});
