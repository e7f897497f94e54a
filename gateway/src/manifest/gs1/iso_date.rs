//! `Option<Date>` as ISO 8601 `YYYY-MM-DD`, the form the MQTT payloads use for expiry.

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::Date;

const FORMAT: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

pub(super) fn serialize<S: Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(d) => {
            let text = d.format(FORMAT).map_err(serde::ser::Error::custom)?;
            s.serialize_str(&text)
        }
        None => s.serialize_none(),
    }
}

pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| Date::parse(&t, FORMAT).map_err(serde::de::Error::custom))
        .transpose()
}
