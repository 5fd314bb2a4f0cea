//! Bytes from the SSH channel → keys. A pure state machine: sequences split
//! across packets decode the same, a lone Esc is told from the start of a
//! sequence by the caller's short timeout (`flush`), bracketed paste arrives
//! as one `Key::Paste`.

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
                        if paste.len() < MAX_PASTE {
                            paste.extend_from_slice(&self.pending[..at]);
                        }
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
                        if paste.len() < MAX_PASTE {
                            paste.extend_from_slice(&self.pending[..take]);
                        }
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
                        self.pending.drain(..1);
                        continue;
                    }
                    return keys;
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn step(b: &[u8]) -> Step {
    let Some(&first) = b.first() else {
        return Step::More;
    };
    match first {
        0x1b => escape(b),
        b'\r' | b'\n' => Step::Key(Key::Enter, 1),
        b'\t' => Step::Key(Key::Tab, 1),
        0x7f | 0x08 => Step::Key(Key::Backspace, 1),
        0x00 => Step::Key(Key::Ctrl(' '), 1),
        0x01..=0x1a => Step::Key(Key::Ctrl((b'a' + first - 1) as char), 1),
        0x1c..=0x1f => Step::Skip(1),
        _ => utf8(b),
    }
}

fn utf8(b: &[u8]) -> Step {
    let len = match b[0] {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Step::Skip(1),
    };
    if b.len() < len {
        return Step::More;
    }
    match std::str::from_utf8(&b[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Step::Key(Key::Char(c), len),
        None => Step::Skip(1),
    }
}

fn escape(b: &[u8]) -> Step {
    let Some(&second) = b.get(1) else {
        return Step::More;
    };
    match second {
        b'[' => csi(b),
        b'O' => match b.get(2) {
            None => Step::More,
            Some(b'A') => Step::Key(Key::Up, 3),
            Some(b'B') => Step::Key(Key::Down, 3),
            Some(b'C') => Step::Key(Key::Right, 3),
            Some(b'D') => Step::Key(Key::Left, 3),
            Some(b'H') => Step::Key(Key::Home, 3),
            Some(b'F') => Step::Key(Key::End, 3),
            Some(c @ b'P'..=b'S') => Step::Key(Key::F(c - b'P' + 1), 3),
            Some(_) => Step::Skip(3),
        },
        0x1b => Step::Key(Key::Esc, 1),
        0x7f => Step::Key(Key::Alt('\u{8}'), 2),
        c if c.is_ascii_graphic() || c == b' ' => Step::Key(Key::Alt(c as char), 2),
        _ => Step::Key(Key::Esc, 1),
    }
}

fn csi(b: &[u8]) -> Step {
    // ESC [ params final, final in 0x40..=0x7e
    let Some(end) = b[2..].iter().position(|c| (0x40..=0x7e).contains(c)) else {
        return Step::More;
    };
    let used = 2 + end + 1;
    let params = &b[2..2 + end];
    let last = b[2 + end];
    let key = match (last, params) {
        (b'A', _) => Key::Up,
        (b'B', _) => Key::Down,
        (b'C', _) => Key::Right,
        (b'D', _) => Key::Left,
        (b'H', _) => Key::Home,
        (b'F', _) => Key::End,
        (b'Z', _) => Key::BackTab,
        (b'~', p) => match p {
            b"200" => return Step::PasteStart(used),
            b"1" | b"7" => Key::Home,
            b"2" => Key::Insert,
            b"3" => Key::Delete,
            b"4" | b"8" => Key::End,
            b"5" => Key::PageUp,
            b"6" => Key::PageDown,
            b"15" => Key::F(5),
            b"17" => Key::F(6),
            b"18" => Key::F(7),
            b"19" => Key::F(8),
            b"20" => Key::F(9),
            b"21" => Key::F(10),
            b"23" => Key::F(11),
            b"24" => Key::F(12),
            _ => return Step::Skip(used),
        },
        _ => return Step::Skip(used),
    };
    Step::Key(key, used)
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
    fn a_lone_esc_comes_out_on_flush() {
        let mut d = Decoder::new();
        assert!(d.feed(b"\x1b").is_empty());
        assert_eq!(d.flush(), Some(Key::Esc));
        assert_eq!(d.flush(), None);
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
