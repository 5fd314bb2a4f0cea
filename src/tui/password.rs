//! The password screen (`w` on an account): the new password typed as dots
//! and, on someone else's account, a "temporary" toggle (Tab) — the holder
//! must choose a new one at the next login, as `password set NAME
//! --temporary` does. The service checks the policy and who may set it.

use super::popup::Prompt;
use crate::locale::Lang;
use crate::service::{Actor, Services};

/// The prompt for `target`'s password: one's own has no toggle.
pub fn prompt(actor: &Actor, target: &str) -> Prompt {
    if actor.is_account && actor.name == target {
        Prompt::Password(None)
    } else {
        Prompt::Password(Some(false))
    }
}

/// Tab on the password prompt flips "temporary"; any other prompt stays.
pub fn toggle(prompt: Prompt) -> Prompt {
    match prompt {
        Prompt::Password(Some(t)) => Prompt::Password(Some(!t)),
        other => other,
    }
}

/// Sets it: the line to show, or the error to show under the prompt.
pub fn submit(
    services: &Services,
    actor: &Actor,
    lang: Lang,
    name: &str,
    password: &str,
    temporary: bool,
) -> Result<String, String> {
    services
        .password_set(actor, name, password, temporary)
        .map_err(|e| e.to_string())?;
    let key = if temporary {
        "console.message.temporary_set"
    } else {
        "console.message.password_set"
    };
    Ok(lang.trf(key, &[("name", name)]))
}
