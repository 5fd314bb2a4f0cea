//! The terminal side of a console session: raw bytes from the SSH channel
//! become keys.

pub mod input;
