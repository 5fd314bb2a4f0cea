//! Allocator settings for the on-host commands, which live a few
//! milliseconds each (sshd runs `authorized-keys` for every login).
//!
//! mimalloc asks for transparent huge pages (`madvise`) on its arenas: on
//! a box whose THP `defrag` setting is `madvise` (Debian's default) the
//! first touch of each 2 MiB region then zeroes a whole huge page, or
//! stalls in direct compaction when memory is fragmented. Measured with
//! `perf record` on `authorized-keys`: a quarter of the process's CPU was
//! the kernel zeroing two huge pages for a process that uses a few hundred
//! KiB. It also purges freed memory at exit (`madvise` calls) that the exit
//! itself is about to give back.
//!
//! These are set as mimalloc's *defaults* before its own start-up reads
//! them (main.rs calls [`tune_allocator`] from an `.init_array` entry that
//! runs ahead of mimalloc's constructor), so `MIMALLOC_ALLOW_THP` and
//! `MIMALLOC_PURGE_DELAY` in the environment still win.
//!
//! The server (`serve`, the same binary) gets [`tune_server_allocator`]
//! from the same entry: no huge pages either, but freed memory given back
//! at once. With THP mimalloc purges only whole 2 MiB regions, so memory a
//! large read freed stayed resident; measured at a million accounts
//! (benches/reads_bench.py), the idle server held ~35 MB less without THP
//! and the first full `user list --json` after a start rose ~15 MB less,
//! at the same speed (bulk import and logins unchanged).

use libmimalloc_sys::mi_option_t;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (v3).
pub const MI_OPTION_PURGE_DELAY: mi_option_t = 15;
/// `mi_option_allow_thp` in mimalloc.h's `mi_option_e` (v3).
pub const MI_OPTION_ALLOW_THP: mi_option_t = 43;

/// No transparent huge pages (mimalloc then also sets
/// `PR_SET_THP_DISABLE` for the process) and no purging of freed memory:
/// the process exits long before either would pay off. Allocates nothing.
pub fn tune_allocator() {
    // SAFETY: each call stores one integer in mimalloc's option table
    // (`mi_option_set_default` leaves an option already initialised alone).
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_ALLOW_THP, 0);
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// The server's settings: no transparent huge pages, freed memory
/// purged at once (`serve` also sets the purge at run time, for builds
/// without the `.init_array` entry). Allocates nothing.
pub fn tune_server_allocator() {
    // SAFETY: as in `tune_allocator`.
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_ALLOW_THP, 0);
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Whether a command line (argv without the program) runs the server:
/// its first word that is neither an option nor `--config`'s value is
/// `serve`.
pub fn is_serve_line<'a>(words: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        match word {
            b"--config" => {
                words.next();
            }
            w if w.starts_with(b"-") => {}
            w => return w == b"serve",
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indices are copied from mimalloc.h: the options they name must
    /// have the defaults in mimalloc v3's options.c (THP allowed, 1 s purge delay),
    /// so a mimalloc upgrade that renumbers the enum fails here (run without
    /// MIMALLOC_* variables in the environment, as the test script does).
    #[test]
    fn option_indices_name_the_options_mimalloc_documents() {
        // SAFETY: reads integers from mimalloc's option table.
        let (thp, purge) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        assert_eq!((thp, purge), (1, 1000));
    }

    #[test]
    fn the_server_is_told_by_its_subcommand_not_by_a_word_anywhere() {
        let line = |s: &'static str| is_serve_line(s.split(' ').map(str::as_bytes));
        assert!(line("serve"));
        assert!(line("serve --listen 127.0.0.1:2222"));
        assert!(line("--config /etc/tenure.toml serve"));
        assert!(line("--config=/etc/tenure.toml --utc serve"));
        assert!(!line("--config serve user list"));
        assert!(!line("user create serve"));
        assert!(!line("authorized-keys serve"));
        assert!(!line("--utc"));
    }
}
