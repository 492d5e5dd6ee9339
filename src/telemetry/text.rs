//! The fields of a text log line: tracing-subscriber's `DefaultFields`, byte for byte,
//! with the common fields written straight into the line instead of through `fmt` and
//! the (colourless) styling calls: strings that need no escaping, integers and booleans
//! as text, other values by their `Debug` after `name=`. The decision log writes a dozen
//! such fields per request; messages, strings that need escaping, errors, `log.`
//! fields and colours on a terminal are left to `DefaultVisitor` itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The text format's field formatter.
#[derive(Debug, Default)]
pub(super) struct TextFields;

impl<'a> MakeVisitor<Writer<'a>> for TextFields {
    type Visitor = TextVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> TextVisitor<'a> {
        TextVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

pub(super) struct TextVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

/// Whether `<str as Debug>` writes `s` unchanged between its quotes.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl TextVisitor<'_> {
    /// Whether `field` may take the direct path (else `DefaultVisitor` writes it).
    fn direct(&self, field: &Field) -> bool {
        let name = field.name();
        self.result.is_ok()
            && name != "message"
            && !name.starts_with("log.")
            && !name.starts_with("r#")
            && !self.writer.has_ansi_escapes()
    }

    /// ` name=` (the space between fields), as `DefaultVisitor` writes it without colour.
    fn name(&mut self, field: &Field) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_char('=')
    }

    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = v.finish();
        // `DefaultVisitor` skips the `log.` metadata fields without writing anything.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    fn integer(&mut self, field: &Field, n: impl itoa::Integer) {
        let mut decimal = itoa::Buffer::new();
        let text = decimal.format(n);
        self.result = self.name(field).and_then(|()| self.writer.write_str(text));
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.direct(field) || !plain(value) {
            return self.delegate(field, |v| v.record_str(field, value));
        }
        self.result = self.name(field).and_then(|()| {
            self.writer.write_char('"')?;
            self.writer.write_str(value)?;
            self.writer.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.direct(field) {
            return self.delegate(field, |v| v.record_u64(field, value));
        }
        self.integer(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.direct(field) {
            return self.delegate(field, |v| v.record_i64(field, value));
        }
        self.integer(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.direct(field) {
            return self.delegate(field, |v| v.record_bool(field, value));
        }
        let text = if value { "true" } else { "false" };
        self.result = self.name(field).and_then(|()| self.writer.write_str(text));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.direct(field) {
            return self.delegate(field, |v| v.record_debug(field, value));
        }
        self.result = self
            .name(field)
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for TextVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for TextVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;
    use crate::telemetry::test_support::{Buf, Failed};

    /// Every kind of field and value, in and out of spans.
    fn events() {
        let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let span = tracing::info_span!("conn", peer = %ip, id = 7u64, name = "a \"b\"");
        let _in = span.enter();
        crate::telemetry::test_support::request_line(false);
        tracing::warn!(
            error = &Failed as &(dyn std::error::Error + 'static),
            "went \"wrong\""
        );
        tracing::info!("only a message {}", 1);
        tracing::info!(message = "a message field", other = "x");
        tracing::info!(empty = "");
        tracing::info!(dbg = ?vec!["x"], disp = %"y z");
    }

    fn render(ansi: bool, ours: bool) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .without_time()
            .with_writer(buf.clone());
        if ours {
            tracing::subscriber::with_default(builder.fmt_fields(TextFields).finish(), events);
        } else {
            tracing::subscriber::with_default(
                builder.fmt_fields(DefaultFields::new()).finish(),
                events,
            );
        }
        String::from_utf8(crate::sync::lock(&buf.0).clone()).unwrap()
    }

    #[test]
    fn lines_are_the_default_formatters_byte_for_byte() {
        for ansi in [false, true] {
            let want = render(ansi, false);
            // With colour, the name and `=` are styled apart; the value is whole either way.
            assert!(
                want.contains("\"065f36cfa274c8b9e5ece8364f63e6e6\""),
                "{want}"
            );
            assert_eq!(render(ansi, true), want, "ansi {ansi}");
        }
    }

    #[test]
    fn only_what_debug_leaves_alone_is_plain() {
        for s in ["", "GET", "a b", "/x?y=1&z", "~!@#$%^&*()"] {
            assert!(plain(s), "{s}");
        }
        for s in ["\"", "\\", "\n", "\t", "\u{7f}", "ü", "\u{1b}"] {
            assert!(!plain(s), "{s:?}");
        }
    }
}
