//! The popups that own the keyboard until answered: a typed line (with
//! what it is for), a yes/no before a change, a text to read — and the
//! changes a confirmation applies. Drawn by `view::draw_popup`.

use chrono::NaiveDate;

/// What a typed line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    DisableReason,
    ExtendDate,
    /// A user asks for an extension: the date, then why.
    RequestDate,
    RequestReason,
    /// The create form submitted as a request (by one who may not create): why.
    AccountRequestReason,
    PurgeName,
    DenyReason(u64),
    KeyLine,
    /// After a valid key line (carried): when the key stops working.
    KeyExpiry,
    /// A new password; someone else's may be set temporary (`Some`, Tab
    /// toggles): the holder chooses a new one at the next login.
    Password(Option<bool>),
    ListFilter,
    AuditFilter,
}

impl Prompt {
    /// The catalogue key of the line above the typed text.
    pub fn label(self) -> &'static str {
        match self {
            Prompt::DisableReason | Prompt::DenyReason(_) | Prompt::RequestReason => {
                "console.prompt.reason"
            }
            Prompt::AccountRequestReason => "console.prompt.account_request_reason",
            Prompt::ExtendDate | Prompt::RequestDate => "console.prompt.date",
            Prompt::PurgeName => "console.prompt.purge_name",
            Prompt::KeyLine => "console.prompt.key_line",
            Prompt::KeyExpiry => "console.prompt.key_expiry",
            Prompt::Password(_) => "console.prompt.password",
            Prompt::ListFilter => "console.prompt.list_filter",
            Prompt::AuditFilter => "console.prompt.audit_filter",
        }
    }

    /// Typed text shown as dots.
    pub fn secret(self) -> bool {
        matches!(self, Prompt::Password(_))
    }

    /// The password screen's "temporary" toggle (Tab), where it is offered.
    pub fn temporary(self) -> Option<bool> {
        match self {
            Prompt::Password(t) => t,
            _ => None,
        }
    }
}

/// A popup owns the keyboard until it is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Popup {
    Input {
        prompt: Prompt,
        title: String,
        targets: Vec<String>,
        text: String,
        /// Carried from an earlier prompt (the date of an extension request).
        carry: Option<String>,
        error: Option<String>,
    },
    /// Yes or no before a change; `targets` are listed when there are several.
    Confirm {
        question: String,
        targets: Vec<String>,
        change: Change,
    },
    /// Text to read: command output, a TOTP enrolment.
    Text {
        title: String,
        text: String,
        error: bool,
        scroll: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Disable {
        targets: Vec<String>,
        reason: String,
    },
    Enable {
        targets: Vec<String>,
    },
    Extend {
        targets: Vec<String>,
        end: NaiveDate,
    },
    Delete {
        targets: Vec<String>,
    },
    Restore {
        targets: Vec<String>,
    },
    Purge {
        target: String,
    },
    KillSession {
        id: u64,
    },
    KillUser {
        target: String,
    },
    Unlock {
        what: String,
    },
    /// A connector's reconcile, after its dry run was shown.
    Reconcile {
        name: String,
    },
    RemoveHost {
        name: String,
    },
    Cert {
        target: String,
    },
    Decide {
        id: u64,
        approve: bool,
        reason: Option<String>,
    },
    RevokeToken {
        name: String,
    },
    RemoveKey {
        target: String,
        fingerprint: String,
    },
    Totp {
        target: String,
    },
}
