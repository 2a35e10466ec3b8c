//! Small serde helpers for the quirks of the engine's JSON (Go's zero values).
//!
//! Go encodes an absent address as `""` and an absent map as `null`; these helpers
//! map both onto `Option`/empty values so handler code never sees the difference.

use serde::{de, Deserialize, Deserializer, Serializer};
use std::fmt::Display;
use std::str::FromStr;

/// Deserialize `null` (or a missing field, with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Option<T>` that travels as a string, with `""` meaning `None`.
pub(crate) mod empty_as_none {
    use super::*;

    pub fn serialize<S, T>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Display,
    {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let raw = Option::<String>::deserialize(d)?;
        match raw.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e| de::Error::custom(format!("{text:?}: {e}"))),
        }
    }
}

/// A required value that travels as a string (for example a CIDR).
pub(crate) mod as_string {
    use super::*;

    pub fn serialize<S, T>(v: &T, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Display,
    {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let text = String::deserialize(d)?;
        text.trim()
            .parse()
            .map_err(|e| de::Error::custom(format!("{text:?}: {e}")))
    }
}
