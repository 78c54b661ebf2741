//! The JSON files `turnstile create venue|performer|event FILE` reads: the protobuf request
//! messages (CreateVenueRequest, CreatePerformerRequest, CreateEventRequest) in proto3 JSON form.
//! Field names are taken as in the .proto (`venue_id`) or in lowerCamelCase (`venueId`), times are
//! RFC 3339 strings, `amount_minor` is a number or a decimal string. Unknown fields are refused
//! with their name, so a typo is not silently dropped. Examples: docs/examples/.

use serde::{Deserialize, Deserializer};
use turnstile_proto::v1 as pb;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueFile {
    pub name: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub address: String,
    pub sections: Vec<SectionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionFile {
    #[serde(alias = "sectionId")]
    pub section_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub rows: Vec<RowFile>,
    #[serde(default, alias = "generalAdmissionCapacity")]
    pub general_admission_capacity: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowFile {
    pub label: String,
    #[serde(alias = "seatLabels")]
    pub seat_labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformerFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub genre: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    /// May be left empty in the file and given with `create event --venue ID`.
    #[serde(default, alias = "venueId")]
    pub venue_id: String,
    #[serde(default, alias = "performerIds")]
    pub performer_ids: Vec<String>,
    #[serde(alias = "startsAt", deserialize_with = "timestamp")]
    pub starts_at: prost_types::Timestamp,
    #[serde(alias = "endsAt", deserialize_with = "timestamp")]
    pub ends_at: prost_types::Timestamp,
    #[serde(alias = "priceLevels")]
    pub price_levels: Vec<PriceLevelFile>,
    #[serde(default, alias = "holdTtlSeconds")]
    pub hold_ttl_seconds: u32,
    #[serde(default, alias = "buyerSeatLimit")]
    pub buyer_seat_limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceLevelFile {
    #[serde(alias = "priceLevelId")]
    pub price_level_id: String,
    #[serde(default)]
    pub name: String,
    pub price: MoneyFile,
    #[serde(alias = "sectionIds")]
    pub section_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyFile {
    #[serde(alias = "amountMinor", deserialize_with = "int64")]
    pub amount_minor: i64,
    pub currency: String,
}

fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<prost_types::Timestamp, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("'{text}' is not an RFC 3339 time (e.g. 2030-06-01T20:00:00Z)")))
}

/// proto3 JSON writes int64 as a string; a number is taken too.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(i64),
        Text(String),
    }
    match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(number) => Ok(number),
        NumberOrText::Text(text) => {
            text.parse().map_err(|_| serde::de::Error::custom(format!("'{text}' is not an integer")))
        }
    }
}

impl From<VenueFile> for pb::CreateVenueRequest {
    fn from(file: VenueFile) -> Self {
        Self {
            name: file.name,
            city: file.city,
            address: file.address,
            sections: file
                .sections
                .into_iter()
                .map(|section| pb::Section {
                    section_id: section.section_id,
                    name: section.name,
                    rows: section
                        .rows
                        .into_iter()
                        .map(|row| pb::Row { label: row.label, seat_labels: row.seat_labels })
                        .collect(),
                    general_admission_capacity: section.general_admission_capacity,
                })
                .collect(),
        }
    }
}

impl From<PerformerFile> for pb::CreatePerformerRequest {
    fn from(file: PerformerFile) -> Self {
        Self { name: file.name, description: file.description, genre: file.genre }
    }
}

impl From<EventFile> for pb::CreateEventRequest {
    fn from(file: EventFile) -> Self {
        Self {
            name: file.name,
            description: file.description,
            category: file.category,
            venue_id: file.venue_id,
            performer_ids: file.performer_ids,
            starts_at: Some(file.starts_at),
            ends_at: Some(file.ends_at),
            price_levels: file
                .price_levels
                .into_iter()
                .map(|level| pb::PriceLevel {
                    price_level_id: level.price_level_id,
                    name: level.name,
                    price: Some(pb::Money { amount_minor: level.price.amount_minor, currency: level.price.currency }),
                    section_ids: level.section_ids,
                })
                .collect(),
            hold_ttl_seconds: file.hold_ttl_seconds,
            buyer_seat_limit: file.buyer_seat_limit,
        }
    }
}

/// Reads and parses a JSON file; the error names the file, and serde's message the field and line.
pub fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples")
    }

    #[test]
    fn the_shipped_examples_parse() {
        let venue: pb::CreateVenueRequest = read::<VenueFile>(&examples().join("venue.json")).unwrap().into();
        assert!(!venue.sections.is_empty());
        let performer: pb::CreatePerformerRequest =
            read::<PerformerFile>(&examples().join("performer.json")).unwrap().into();
        assert!(!performer.name.is_empty());
        let event: pb::CreateEventRequest = read::<EventFile>(&examples().join("event.json")).unwrap().into();
        assert!(event.starts_at.unwrap().seconds < event.ends_at.unwrap().seconds);
        assert!(!event.price_levels.is_empty());
    }

    #[test]
    fn camel_case_and_string_amounts_are_taken_and_unknown_fields_named() {
        let event: EventFile = serde_json::from_str(
            r#"{"name": "N", "venueId": "v", "startsAt": "2030-01-01T20:00:00Z", "endsAt": "2030-01-01",
                "priceLevels": [{"priceLevelId": "P", "price": {"amountMinor": "1250", "currency": "EUR"},
                "sectionIds": ["A"]}]}"#,
        )
        .unwrap();
        assert_eq!(event.price_levels[0].price.amount_minor, 1_250);
        assert_eq!(event.venue_id, "v");
        let error = serde_json::from_str::<PerformerFile>(r#"{"name": "N", "genra": "rock"}"#).unwrap_err();
        assert!(error.to_string().contains("genra"), "{error}");
        let error = serde_json::from_str::<EventFile>(
            r#"{"name": "N", "starts_at": "tomorrow", "ends_at": "2030-01-01", "price_levels": []}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("tomorrow"), "{error}");
    }
}
