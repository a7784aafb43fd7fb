//! The one place that says what a channel name may be.

use std::fmt;

/// Longest channel name, in bytes (all allowed characters are ASCII).
pub const MAX_CHANNEL_NAME_LEN: usize = 64;

/// The channel that `/listen` and `/ping` use.
pub const DEFAULT_CHANNEL: &str = "default";

/// A valid channel name: 1 to 64 ASCII letters, digits, `_`, `-` or `.`, starting with a
/// letter or digit. Safe in a URL path, a log line and a Durable Object name as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelName(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelNameError {
    Empty,
    TooLong,
    BadFirstCharacter,
    BadCharacter(char),
}

impl fmt::Display for ChannelNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelNameError::Empty => write!(f, "channel name is empty"),
            ChannelNameError::TooLong => {
                write!(
                    f,
                    "channel name is longer than {MAX_CHANNEL_NAME_LEN} characters"
                )
            }
            ChannelNameError::BadFirstCharacter => {
                write!(f, "channel name must start with a letter or digit")
            }
            ChannelNameError::BadCharacter(c) => write!(
                f,
                "channel name contains {c:?}; allowed are ASCII letters, digits, '_', '-' and '.'"
            ),
        }
    }
}

impl std::error::Error for ChannelNameError {}

impl ChannelName {
    pub fn parse(name: &str) -> Result<Self, ChannelNameError> {
        let first = name.chars().next().ok_or(ChannelNameError::Empty)?;
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_-.".contains(*c)))
        {
            return Err(ChannelNameError::BadCharacter(bad));
        }
        if name.len() > MAX_CHANNEL_NAME_LEN {
            return Err(ChannelNameError::TooLong);
        }
        if !first.is_ascii_alphanumeric() {
            return Err(ChannelNameError::BadFirstCharacter);
        }
        Ok(ChannelName(name.to_string()))
    }

    pub fn default_channel() -> Self {
        ChannelName(DEFAULT_CHANNEL.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_ascii_and_start_with_a_letter_or_digit() {
        for ok in ["default", "a", "news.sports-2024_x", &"a".repeat(64)] {
            assert_eq!(ChannelName::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(ChannelName::parse(""), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::parse(&"a".repeat(65)),
            Err(ChannelNameError::TooLong)
        );
        assert_eq!(
            ChannelName::parse(".hidden"),
            Err(ChannelNameError::BadFirstCharacter)
        );
        assert_eq!(
            ChannelName::parse("a/b"),
            Err(ChannelNameError::BadCharacter('/'))
        );
        assert_eq!(
            ChannelName::parse("é"),
            Err(ChannelNameError::BadCharacter('é'))
        );
        assert_eq!(
            ChannelName::parse("a b"),
            Err(ChannelNameError::BadCharacter(' '))
        );
    }
}
