//! [`Secret`]: a string that `Debug`, `Display` and `Serialize` show as `[redacted]`, and
//! how a secret is read from its `*_file` key or a systemd credential.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;

/// A secret string: `Debug`, `Display` and `Serialize` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Fill a secret from its `*_file` key, or from the systemd credential named
/// `credential` when neither is set (`LoadCredential=sentry.dsn:/path` needs no key).
/// A relative file name is looked up in `$CREDENTIALS_DIRECTORY`.
pub(super) fn resolve_secret(
    value: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    credential: &str,
) -> Result<(), ConfigError> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    if value.is_none()
        && file.is_none()
        && credentials
            .as_ref()
            .is_some_and(|d| d.join(credential).is_file())
    {
        *file = Some(PathBuf::from(credential));
    }
    if let Some(name) = file {
        let path = match &credentials {
            Some(dir) if name.is_relative() => dir.join(&*name),
            _ => name.clone(),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Unreadable {
            path: path.clone(),
            source,
        })?;
        *value = Some(Secret::new(text.trim()));
    }
    Ok(())
}
