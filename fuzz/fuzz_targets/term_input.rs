//! Terminal input decoder: arbitrary bytes, cut into arbitrary packets.
//! No panic; a paste stays within its cap; and — where the module promises
//! it — the same bytes give the same keys however they are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::term::input::{Decoder, Key};

/// The decoder's paste cap in bytes (`MAX_PASTE`); lossy UTF-8 may turn
/// each invalid byte into a 3-byte U+FFFD.
const MAX_PASTE: usize = 64 * 1024;
/// The decoder's longest escape sequence (`MAX_SEQUENCE`).
const MAX_SEQUENCE: usize = 32;

fn decode(chunks: &[&[u8]]) -> Vec<Key> {
    let mut d = Decoder::new();
    let mut keys = Vec::new();
    for chunk in chunks {
        keys.extend(d.feed(chunk));
    }
    keys.extend(d.flush());
    keys
}

/// Split invariance is promised for sequences the decoder waits for: a CSI
/// sequence longer than the cap is given up on, and where it is given up
/// depends on the packets. Skip inputs that contain one.
fn has_overlong_csi(b: &[u8]) -> bool {
    b.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b["
            && b.get(i + 2..).is_some_and(|rest| {
                match rest.iter().position(|c| (0x40..=0x7e).contains(c)) {
                    Some(end) => 2 + end + 1 > MAX_SEQUENCE,
                    None => b.len() - i > MAX_SEQUENCE,
                }
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((&seed, body)) = rest.split_first() else {
        return;
    };
    // Mode 0xf0 and up (one input in sixteen): a paste larger than the cap.
    let owned;
    let bytes: &[u8] = if mode >= 0xf0 && !body.is_empty() {
        let mut big = b"\x1b[200~".to_vec();
        while big.len() < MAX_PASTE + 4096 {
            big.extend_from_slice(body);
        }
        big.extend_from_slice(b"\x1b[201~");
        big.extend_from_slice(body);
        owned = big;
        &owned
    } else {
        body
    };

    let whole = decode(&[bytes]);
    for key in &whole {
        if let Key::Paste(text) = key {
            assert!(text.len() <= 3 * MAX_PASTE, "paste of {} bytes", text.len());
        }
    }

    // Cut points from a small generator seeded by the input.
    let mut state = u32::from(seed) | (u32::from(mode & 0x7f) << 8) | 1;
    let mut cuts = vec![0];
    let mut at = 0usize;
    while at < bytes.len() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let step = if mode & 0x40 != 0 {
            1
        } else {
            1 + (state >> 16) as usize % 9
        };
        at = (at + step).min(bytes.len());
        cuts.push(at);
    }
    let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
    let split = decode(&chunks);

    if !has_overlong_csi(bytes) {
        assert_eq!(whole, split, "split at {cuts:?}");
    }
});
