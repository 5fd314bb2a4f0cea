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
//! `MIMALLOC_PURGE_DELAY` in the environment still win. The server (the
//! same binary) keeps mimalloc's defaults: only on-host command lines get
//! here.

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
}
