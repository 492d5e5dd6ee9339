//! Logs, metrics and the admin listener (`/metrics`, `/healthz`, `/readyz`,
//! `/debug/routes`).

mod admin;
pub mod fields;
mod json;
mod metrics;
mod text;
mod writer;

pub use admin::{AdminState, bind as bind_admin, serve_admin};
pub use metrics::Metrics;
pub use writer::flush as flush_logs;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber, writing to stderr (the per-request logs in batches:
/// [`writer`]; [`flush_logs`] at exit). `level` is a level (`info`) or a filter directive
/// (`info,portcullis::proxy=debug`); `RUST_LOG`, when set, wins.
pub fn init_logging(level: &str, format: LogFormat) -> Result<(), LogError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| LogError::Filter("RUST_LOG", v.clone(), e))?
        }
        _ => EnvFilter::try_new(directive(level))
            .map_err(|e| LogError::Filter("log_level", level.to_string(), e))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer::Sink);
    let result = match format {
        LogFormat::Text => builder.fmt_fields(text::TextFields).try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines::new(
                tracing_subscriber::fmt::time::SystemTime,
            ))
            .try_init(),
    };
    result.map_err(|e| LogError::Install(e.to_string()))?;
    // A panic's message comes after the lines logged before it.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        writer::flush();
        previous(info);
    }));
    Ok(())
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0} `{1}` is not a valid level or filter: {2}")]
    Filter(
        &'static str,
        String,
        #[source] tracing_subscriber::filter::ParseError,
    ),
    #[error("installing the log subscriber: {0}")]
    Install(String),
}

/// The filter for a `log_level`. rustls warns about what clients send (an IP address
/// as SNI, for one) once per connection; at the usual levels that is noise, and failed
/// handshakes are logged by Portcullis at debug anyway. Filters are used as written.
fn directive(level: &str) -> String {
    match level {
        "info" | "warn" => format!("{level},rustls=error"),
        other => other.to_string(),
    }
}

/// An error with its chain of causes, `: `-separated, for log lines and messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What the formatters' tests share: a buffer to log into, an error to log.
#[cfg(test)]
mod test_support {
    use std::fmt;
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    pub(super) struct Buf(pub(super) Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[derive(Debug)]
    pub(super) struct Failed;
    impl fmt::Display for Failed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("it \"failed\"\nbadly")
        }
    }
    impl std::error::Error for Failed {}

    /// A request's log line with every kind of field and value (on the access log's
    /// target or the decision log's), then a line of fields only.
    pub(super) fn request_line(target_is_access: bool) {
        let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let none: Option<&str> = None;
        macro_rules! line {
            ($target:literal) => {
                tracing::info!(
                    target: $target,
                    request_id = "065f36cfa274c8b9e5ece8364f63e6e6",
                    method = Some("GET"),
                    host = "app.example.com",
                    path = "/a b/ü/\"q\"\\",
                    ip = Some(tracing::field::display(ip)),
                    user = none,
                    email = "",
                    policy = "line\nbreak\ttab \u{1b}[31mred \u{8}\u{c}\r\u{7f}\u{0}",
                    status = Some(302u16),
                    duration_ms = 55.914888000000005,
                    whole = 2.0f64,
                    nan = f64::NAN,
                    big = u64::MAX,
                    small = i64::MIN,
                    minus = -7i64,
                    zero = 0u64,
                    yes = true,
                    no = false,
                    r#type = "raw",
                    wide = 1u128 << 100,
                    error = &Failed as &(dyn std::error::Error + 'static),
                    dbg = ?vec!["x\"y"],
                    "a message {}", "with \"quotes\"",
                )
            };
        }
        if target_is_access {
            line!("portcullis::access");
        } else {
            line!("portcullis::decision");
        }
        tracing::warn!(target: "portcullis::decision", only = "fields");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_levels_quiet_client_tls_noise_and_filters_stay_as_written() {
        for (level, want) in [
            ("info", "info,rustls=error"),
            ("warn", "warn,rustls=error"),
            ("debug", "debug"),
            ("error", "error"),
            (
                "info,portcullis::proxy=debug",
                "info,portcullis::proxy=debug",
            ),
        ] {
            assert_eq!(super::directive(level), want, "{level}");
        }
    }
}
