//! Authentication building blocks: TOTP (RFC 6238), the failure throttle.
//! Pure apart from randomness; the service wires them to accounts and the clock.

pub mod sealed;
pub mod throttle;
pub mod totp;
