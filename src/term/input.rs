//! Bytes from the SSH channel → keys. A pure state machine that frames one
//! event at a time and lets terminput (crossterm's parser over a byte slice)
//! say what it means: sequences split across packets decode the same, a lone
//! Esc is told from the start of a sequence by the caller's short timeout
//! (`flush`), bracketed paste arrives as one `Key::Paste` (streamed here, so
//! a large paste never has to be re-parsed).

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Alt(char),
    Enter,
    Tab,
    BackTab,
    Backspace,
    Esc,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Insert,
    Delete,
    F(u8),
    Paste(String),
}

/// Longest escape sequence we wait for before giving up on it.
const MAX_SEQUENCE: usize = 32;
/// Largest paste we keep.
const MAX_PASTE: usize = 64 * 1024;

#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
    paste: Option<Vec<u8>>,
}

enum Step {
    /// A key and how many bytes it used.
    Key(Key, usize),
    /// Bytes to drop (an unknown sequence).
    Skip(usize),
    /// Start of bracketed paste (bytes used).
    PasteStart(usize),
    /// Need more bytes.
    More,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the decoder holds a lone Esc: the caller should call
    /// `flush` if nothing else arrives shortly.
    pub fn waiting(&self) -> bool {
        self.paste.is_none() && self.pending == [0x1b]
    }

    /// A lone Esc after the timeout.
    pub fn flush(&mut self) -> Option<Key> {
        if self.waiting() {
            self.pending.clear();
            return Some(Key::Esc);
        }
        None
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        loop {
            if let Some(paste) = self.paste.as_mut() {
                const END: &[u8] = b"\x1b[201~";
                match find(&self.pending, END) {
                    Some(at) => {
                        keep_paste(paste, &self.pending[..at]);
                        self.pending.drain(..at + END.len());
                        let text = String::from_utf8_lossy(paste).into_owned();
                        self.paste = None;
                        keys.push(Key::Paste(text));
                        continue;
                    }
                    None => {
                        // Keep a possible partial end marker.
                        let keep = END.len().min(self.pending.len());
                        let take = self.pending.len() - keep;
                        keep_paste(paste, &self.pending[..take]);
                        self.pending.drain(..take);
                        return keys;
                    }
                }
            }
            if self.pending.is_empty() {
                return keys;
            }
            match step(&self.pending) {
                Step::Key(key, used) => {
                    self.pending.drain(..used);
                    keys.push(key);
                }
                Step::Skip(used) => {
                    self.pending.drain(..used);
                }
                Step::PasteStart(used) => {
                    self.pending.drain(..used);
                    self.paste = Some(Vec::new());
                }
                Step::More => {
                    if self.pending.len() > MAX_SEQUENCE {
                        // Not a sequence we know: drop it whole rather than
                        // type its tail into whatever field has the focus.
                        self.pending.clear();
                    }
                    return keys;
                }
            }
        }
    }
}

/// Adds to a paste up to the cap: the bytes past `MAX_PASTE` are dropped, so
/// the paste keeps the same prefix however the packets were cut.
fn keep_paste(paste: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_PASTE.saturating_sub(paste.len());
    paste.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Frames one event: how many bytes the next key takes. What the bytes mean
/// is terminput's job (`interpret`); this only finds where an event ends, so
/// a sequence split across packets waits for the rest.
fn step(b: &[u8]) -> Step {
    let Some(&first) = b.first() else {
        return Step::More;
    };
    if first != 0x1b {
        return match char_len(b) {
            Frame::Len(n) => interpret(b, n),
            Frame::More => Step::More,
            Frame::Bad => Step::Skip(1),
        };
    }
    let Some(&second) = b.get(1) else {
        return Step::More;
    };
    match second {
        b'[' => {
            // ESC [ params final, final in 0x40..=0x7e.
            let Some(end) = b
                .get(2..)
                .and_then(|rest| rest.iter().position(|c| (0x40..=0x7e).contains(c)))
            else {
                return Step::More;
            };
            let used = 2 + end + 1;
            if b.get(..used) == Some(b"\x1b[200~".as_slice()) {
                return Step::PasteStart(used);
            }
            interpret(b, used)
        }
        b'O' => match b.get(2) {
            None => Step::More,
            Some(_) => interpret(b, 3),
        },
        // ESC ESC: the first is a lone Esc (people press it twice to be sure).
        0x1b => Step::Key(Key::Esc, 1),
        _ => match char_len(&b[1..]) {
            // ESC then a key: Alt with that key.
            Frame::Len(n) => interpret(b, 1 + n),
            Frame::More => Step::More,
            Frame::Bad => Step::Key(Key::Esc, 1),
        },
    }
}

enum Frame {
    Len(usize),
    More,
    Bad,
}

/// Length of the UTF-8 character (or control byte) at the start of `b`.
fn char_len(b: &[u8]) -> Frame {
    let Some(&first) = b.first() else {
        return Frame::More;
    };
    let len = match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Frame::Bad,
    };
    match b.get(..len) {
        None => Frame::More,
        Some(bytes) if std::str::from_utf8(bytes).is_ok() => Frame::Len(len),
        Some(_) => Frame::Bad,
    }
}

/// Asks terminput what the `used` bytes at the start of `b` mean.
fn interpret(b: &[u8], used: usize) -> Step {
    let Some(bytes) = b.get(..used) else {
        return Step::More;
    };
    match terminput::Event::parse_from(bytes) {
        Ok(Some(terminput::Event::Key(event))) => match key_of(event) {
            Some(key) => Step::Key(key, used),
            None => Step::Skip(used),
        },
        // Focus, mouse, unknown or malformed: not a key we use.
        _ => Step::Skip(used),
    }
}

fn key_of(event: terminput::KeyEvent) -> Option<Key> {
    use terminput::{KeyCode, KeyEventKind, KeyModifiers};
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = event.modifiers.contains(KeyModifiers::CTRL);
    let alt = event.modifiers.contains(KeyModifiers::ALT);
    let shift = event.modifiers.contains(KeyModifiers::SHIFT);
    Some(match event.code {
        KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
        KeyCode::Char(c) if alt => Key::Alt(c),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Tab if shift => Key::BackTab,
        KeyCode::Tab => Key::Tab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Esc => Key::Esc,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Insert => Key::Insert,
        KeyCode::Delete => Key::Delete,
        KeyCode::F(n) => Key::F(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        Decoder::new().feed(bytes)
    }

    #[test]
    fn plain_keys_controls_and_utf8() {
        assert_eq!(
            keys(b"a\r\x7f\t"),
            [Key::Char('a'), Key::Enter, Key::Backspace, Key::Tab]
        );
        assert_eq!(keys(b"\x03\x04"), [Key::Ctrl('c'), Key::Ctrl('d')]);
        assert_eq!(keys("é".as_bytes()), [Key::Char('é')]);
    }

    #[test]
    fn arrows_function_keys_and_alt() {
        assert_eq!(
            keys(b"\x1b[A\x1b[B\x1bOC\x1b[D"),
            [Key::Up, Key::Down, Key::Right, Key::Left]
        );
        assert_eq!(
            keys(b"\x1bOP\x1b[15~\x1b[24~"),
            [Key::F(1), Key::F(5), Key::F(12)]
        );
        assert_eq!(
            keys(b"\x1b[5~\x1b[6~\x1b[3~"),
            [Key::PageUp, Key::PageDown, Key::Delete]
        );
        assert_eq!(keys(b"\x1bx"), [Key::Alt('x')]);
    }

    #[test]
    fn sequences_split_across_packets_decode_the_same() {
        let mut d = Decoder::new();
        assert!(d.feed(b"\x1b").is_empty());
        assert!(d.waiting());
        assert!(d.feed(b"[").is_empty());
        assert_eq!(d.feed(b"A"), [Key::Up]);
        let mut d = Decoder::new();
        assert!(d.feed(&"é".as_bytes()[..1]).is_empty());
        assert_eq!(d.feed(&"é".as_bytes()[1..]), [Key::Char('é')]);
    }

    #[test]
    fn modified_keys_from_xterm_and_kitty_style_sequences() {
        // Ctrl-Up and Shift-Tab as xterm sends them; modifiers we do not bind are dropped.
        assert_eq!(keys(b"\x1b[1;5A\x1b[Z"), [Key::Up, Key::BackTab]);
        assert_eq!(keys(b"\x1b[1;2P"), [Key::F(1)]);
        assert_eq!(keys(b"\x1b\x7f"), [Key::Backspace]);
        assert_eq!(keys("\x1bé".as_bytes()), [Key::Alt('é')]);
        // Alt+Ctrl-c is Ctrl-c to us: it still quits.
        assert_eq!(keys(b"\x1b\x03"), [Key::Ctrl('c')]);
    }

    #[test]
    fn garbage_is_dropped_and_decoding_goes_on() {
        assert_eq!(keys(b"\xff\xfea"), [Key::Char('a')]);
        // An unknown CSI sequence (a focus report) is skipped whole.
        assert_eq!(keys(b"\x1b[Ib"), [Key::Char('b')]);
        // A sequence that never ends gives up after the cap.
        let mut d = Decoder::new();
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 40));
        assert!(d.feed(&long).is_empty());
        assert_eq!(d.feed(b"a"), [Key::Char('a')]);
    }

    #[test]
    fn every_split_of_a_mixed_stream_decodes_the_same() {
        let stream = "a\x1b[A\x1b[15~é\x1b[200~pasted\x1b[201~\x1bx\r".as_bytes();
        let whole = keys(stream);
        assert_eq!(whole.len(), 7, "{whole:?}");
        for cut in 1..stream.len() {
            let mut d = Decoder::new();
            let mut got = d.feed(&stream[..cut]);
            got.extend(d.feed(&stream[cut..]));
            assert_eq!(got, whole, "split at {cut}");
        }
    }

    #[test]
    fn a_lone_esc_comes_out_on_flush() {
        let mut d = Decoder::new();
        assert!(d.feed(b"\x1b").is_empty());
        assert_eq!(d.flush(), Some(Key::Esc));
        assert_eq!(d.flush(), None);
    }

    #[test]
    fn a_paste_past_the_cap_is_cut_at_the_cap_however_it_arrives() {
        // Found writing the term_input fuzz target: the cap was checked before a
        // packet was added, so one large packet went in whole and the kept
        // text depended on how the paste was cut into packets.
        let body = vec![b'x'; MAX_PASTE + 5000];
        let mut stream = b"\x1b[200~".to_vec();
        stream.extend_from_slice(&body);
        stream.extend_from_slice(b"\x1b[201~");
        let whole = keys(&stream);
        assert_eq!(whole, [Key::Paste("x".repeat(MAX_PASTE))]);
        let mut d = Decoder::new();
        let mut split = Vec::new();
        for chunk in stream.chunks(1000) {
            split.extend(d.feed(chunk));
        }
        assert_eq!(split, whole);
    }

    #[test]
    fn bracketed_paste_is_one_key_even_when_split() {
        let mut d = Decoder::new();
        assert!(d.feed(b"\x1b[200~ssh-ed25519 AAAA\x1b[2").is_empty());
        assert_eq!(
            d.feed(b"01~x"),
            [Key::Paste("ssh-ed25519 AAAA".into()), Key::Char('x')]
        );
    }
}
