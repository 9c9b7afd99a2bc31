//! Exit codes scripts can rely on, and the one error type every command returns.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | anything else (local storage, unexpected answers, I/O) |
//! | 2 | usage: bad arguments, a bad backend URL or a malformed token (empty, whitespace, line break, control characters) |
//! | 3 | the backend cannot be reached (not running, wrong address, offline) |
//! | 4 | the backend refused the token (401/403), or it belongs to the other role (a customer's token for `friend`, or the reverse) |
//! | 5 | the backend or the core refused the action (invalid input, wrong state, not found, invalid quote or consent) |
//! | 6 | an accept did not win (taken by another Friend, gone, not eligible) |
//! | 7 | `simulate`: an invariant was broken (double assignment, lost write, a job left open) |
//! | 8 | a wait timed out (`customer watch --timeout`) |

use friend_core::CoreError;
use friend_core::error::account_of;
use friend_protocol::Role;
use std::fmt;

/// What went wrong, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not covered below.
    Failure = 1,
    /// 2: bad arguments.
    Usage = 2,
    /// 3: the backend cannot be reached.
    Unreachable = 3,
    /// 4: the token was refused.
    Unauthorized = 4,
    /// 5: the action was refused.
    Refused = 5,
    /// 6: an accept did not win.
    NotWon = 6,
    /// 7: a simulation invariant was broken.
    Invariant = 7,
    /// 8: a wait timed out.
    Timeout = 8,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A command's failure: the exit code and a message for a person.
#[derive(Debug, Clone)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What happened and, where possible, what to do about it.
    pub message: String,
}

impl CliError {
    /// A failure with an explicit exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
        }
    }

    /// Exit code 1.
    pub fn failure(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Failure, message)
    }

    /// Exit code 2.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }

    /// Maps a core error, naming the backend so "not running" is obvious.
    pub fn from_core(e: CoreError, url: &str) -> CliError {
        let message = e.to_string();
        match e {
            CoreError::Offline { .. } | CoreError::ServerUnavailable(_) => CliError::new(
                Exit::Unreachable,
                format!(
                    "cannot reach the backend at {url} ({message}); is `friendctl serve` running there?"
                ),
            ),
            CoreError::Unauthorized(_) => CliError::new(
                Exit::Unauthorized,
                format!("the backend at {url} refused the token ({message}); check --token"),
            ),
            CoreError::WrongRole { expected, actual } => CliError::new(
                Exit::Unauthorized,
                format!(
                    "the backend at {url} says this token belongs to {}, not to {}: {}",
                    account_of(actual),
                    account_of(expected),
                    match actual {
                        Role::Customer =>
                            "use it with `friendctl customer`, or give `friendctl friend` a Friend's token (e.g. dev-friend-anna)",
                        Role::Friend =>
                            "use it with `friendctl friend`, or give `friendctl customer` a customer's token (e.g. dev-customer-heidi)",
                        Role::Unknown => "friendctl acts for Friends and customers only",
                    }
                ),
            ),
            CoreError::InvalidToken(problem) => CliError::usage(format!(
                "the token (--token or FRIENDCTL_TOKEN) is malformed: {problem}"
            )),
            CoreError::Forbidden(_) => CliError::new(
                Exit::Unauthorized,
                format!("this account may not do that ({message})"),
            ),
            CoreError::InvalidUrl(_) => CliError::usage(format!("{message} (check --url)")),
            CoreError::NotFound(_)
            | CoreError::NotCached(_)
            | CoreError::Refused { .. }
            | CoreError::InvalidInput(_)
            | CoreError::InvalidQuote { .. }
            | CoreError::InvalidConsent { .. }
            | CoreError::Negotiation { .. } => CliError::new(Exit::Refused, message),
            CoreError::WrongKey => CliError::failure(format!(
                "{message}: the key file next to the database belongs to another database"
            )),
            _ => CliError::failure(message),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Result of a command.
pub type CliResult<T> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_documented_codes() {
        let url = "http://127.0.0.1:1";
        let offline = CoreError::Offline {
            message: "cannot connect".into(),
            maybe_delivered: false,
        };
        assert_eq!(CliError::from_core(offline, url).exit.code(), 3);
        let denied = CoreError::Unauthorized("bad token".into());
        assert_eq!(CliError::from_core(denied, url).exit.code(), 4);
        let other_role = CoreError::WrongRole {
            expected: Role::Friend,
            actual: Role::Customer,
        };
        let e = CliError::from_core(other_role, url);
        assert_eq!(e.exit.code(), 4);
        assert!(e.message.contains("belongs to a customer account"), "{e}");
        let malformed = CoreError::InvalidToken("it is empty".into());
        let e = CliError::from_core(malformed, url);
        assert_eq!(e.exit.code(), 2);
        assert!(e.message.contains("malformed: it is empty"), "{e}");
        let refused = CoreError::InvalidInput("no".into());
        assert_eq!(CliError::from_core(refused, url).exit.code(), 5);
        assert_eq!(CliError::from_core(CoreError::Closed, url).exit.code(), 1);
    }
}
