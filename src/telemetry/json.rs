//! JSON log lines. The per-request logs (decision and access: one line per request, a
//! dozen fields each) are written straight into the line, byte for byte what
//! tracing-subscriber's JSON format with flattened events writes, without its serde
//! map, its per-chunk UTF-8 checks and its timestamp copy: `{"timestamp":…,"level":…,`
//! the fields in order, `"target":…}`. Every other line, and a request line written
//! inside a span (whose fields the reference format adds), goes to that format itself.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON format's event formatter.
pub(super) struct JsonLines<T> {
    reference: Format<Json, T>,
    timer: T,
}

impl<T: FormatTime + Clone> JsonLines<T> {
    pub(super) fn new(timer: T) -> JsonLines<T> {
        JsonLines {
            reference: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_timer(timer.clone()),
            timer,
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for JsonLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if !super::writer::batched(meta.target())
            || event.parent().is_some()
            || ctx.lookup_current().is_some()
        {
            return self.reference.format_event(ctx, writer, event);
        }
        // The timestamp is written as a JSON string, escaped like any other.
        writer.write_str("{\"timestamp\":\"")?;
        self.timer
            .format_time(&mut Writer::new(&mut Escaping(&mut writer)))?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`, as `tracing_serde`'s map visitor does: numbers
/// and booleans bare, strings and `Debug` values (errors, 128-bit integers and
/// `Display` values through it) as strings; a non-finite float is `null`.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_char(',')
                .and_then(|()| string(self.writer, field.name()))
                .and_then(|()| self.writer.write_char(':'))
                .and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| string(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own rendering (shortest round-trip form; `null` if not finite),
        // on the stack: every request line has one (`duration_ms`).
        self.entry(field, |w| {
            let mut buf = [0u8; 32];
            let mut out = std::io::Cursor::new(&mut buf[..]);
            serde_json::to_writer(&mut out, &value).map_err(|_| fmt::Error)?;
            let len = out.position() as usize;
            w.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string.
fn string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    escape(w, s)?;
    w.write_char('"')
}

/// Escapes what JSON requires and nothing else, as serde_json does: `"`, `\`, and
/// control characters (the short forms where JSON has them, else `\u00xx`); other
/// characters, non-ASCII ones included, are written as they are.
fn escape(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII: the slices fall on character boundaries.
        w.write_str(&s[start..i])?;
        if short.is_empty() {
            w.write_str("\\u00")?;
            w.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            w.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
        } else {
            w.write_str(short)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// A writer that escapes what goes through it (a `Debug` value into a JSON string).
struct Escaping<'w, W: fmt::Write>(&'w mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;
    use crate::telemetry::test_support::{Buf, request_line};

    /// A fixed time with something to escape, so both formats write the same line.
    #[derive(Clone)]
    struct Fixed;
    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-01T20:00:00.123456Z \"q\"")
        }
    }

    /// Request lines out of and in spans, and other lines.
    fn events() {
        request_line(false);
        request_line(true);
        let span = tracing::info_span!("conn", peer = "10.1.2.3", id = 7u64);
        let _in = span.enter();
        request_line(false);
        tracing::info!(other = "line", "not a request line");
    }

    fn render(ours: bool) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .fmt_fields(JsonFields::new());
        if ours {
            let s = builder.event_format(JsonLines::new(Fixed)).finish();
            tracing::subscriber::with_default(s, events);
        } else {
            let reference = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_timer(Fixed);
            tracing::subscriber::with_default(builder.event_format(reference).finish(), events);
        }
        String::from_utf8(crate::sync::lock(&buf.0).clone()).unwrap()
    }

    #[test]
    fn lines_are_the_reference_formats_byte_for_byte() {
        let want = render(false);
        assert_eq!(want.lines().count(), 7, "{want}");
        for line in want.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect(line);
        }
        assert!(want.contains("\"spans\":"), "{want}");
        assert_eq!(render(true), want);
    }

    #[test]
    fn escapes_as_json_wants() {
        for (raw, want) in [
            ("", ""),
            ("plain ü ✓", "plain ü ✓"),
            ("\"\\", "\\\"\\\\"),
            ("\n\r\t\u{8}\u{c}", "\\n\\r\\t\\b\\f"),
            ("\u{0}\u{1f}\u{1b}x\u{7f}", "\\u0000\\u001f\\u001bx\u{7f}"),
        ] {
            let mut out = String::new();
            escape(&mut out, raw).unwrap();
            assert_eq!(out, want, "{raw:?}");
            assert_eq!(serde_json::to_string(raw).unwrap(), format!("\"{want}\""));
        }
    }
}
