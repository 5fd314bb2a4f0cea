//! Bounds on what a client can make the server keep: strings it supplies are
//! cut before they reach an audit event or a log line, and a log line that
//! repeats is written at most once per interval with a count of the rest.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most bytes of a client-supplied string kept in an audit event or log line.
pub const CLIENT_TEXT: usize = 256;

/// `text` cut to at most `max` bytes (on a character boundary), marked with
/// how much was cut.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…[cut {} bytes]", &text[..end], text.len() - end))
}

/// How often one kind of log line may be written.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

struct Slot {
    last: Instant,
    suppressed: u64,
}

static SLOTS: Mutex<Option<HashMap<&'static str, Slot>>> = Mutex::new(None);

/// Whether a line of kind `key` may be written now; `Some(n)` carries how many
/// were suppressed since the last one written.
pub fn log_allowed(key: &'static str) -> Option<u64> {
    let mut guard = match SLOTS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let slots = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match slots.get_mut(key) {
        Some(slot) if now.duration_since(slot.last) < LOG_INTERVAL => {
            slot.suppressed += 1;
            None
        }
        Some(slot) => {
            let n = slot.suppressed;
            slot.last = now;
            slot.suppressed = 0;
            Some(n)
        }
        None => {
            slots.insert(
                key,
                Slot {
                    last: now,
                    suppressed: 0,
                },
            );
            Some(0)
        }
    }
}

/// A tracing event of kind `$key` (a static string), written at most once per
/// `LOG_INTERVAL`; the next one written says how many were suppressed.
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $key:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $crate::bounded::log_allowed($key) {
            if suppressed > 0 {
                tracing::$level!("{} ({} similar lines suppressed in the last {} s)", format_args!($($arg)+), suppressed, $crate::bounded::LOG_INTERVAL.as_secs());
            } else {
                tracing::$level!($($arg)+);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_client_text_is_cut_and_marked() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(200);
        let c = cut(&long, 11);
        assert!(c.starts_with("ééééé…[cut "), "{c}");
        assert!(c.len() < 40);
    }

    #[test]
    fn a_repeated_line_is_written_once_per_interval() {
        assert_eq!(log_allowed("test-repeat"), Some(0));
        for _ in 0..1000 {
            assert_eq!(log_allowed("test-repeat"), None);
        }
        assert_eq!(log_allowed("test-other"), Some(0));
    }
}

/// The server's log writer: each log line goes to stderr with every control
/// character (and bidi or zero-width character) a client could have put in
/// it shown escaped, so names and requests a client sends cannot forge log
/// lines or drive the terminal of whoever reads the log.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EscapingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        EscapingStderr
    }
}

pub struct EscapingStderr;

impl std::io::Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let line = format!("{}{newline}", crate::text::escape_text(body));
        std::io::stderr().write_all(line.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
