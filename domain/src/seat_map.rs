//! A venue's seat map, validated and laid out for the inventory: every reserved seat gets a dense
//! index (`u32`), so an event's seat state can be one byte per seat in a `Vec`.
//!
//! Seat ids on the wire are `<section>:<row>:<seat>` built from the admin's labels. The map is
//! shared (`Arc`) by every event at the venue; events copy nothing of it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{quoted, Error, Result};
use crate::limits;

/// What an admin sends to create a section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSpec {
    pub section_id: String,
    pub name: String,
    pub rows: Vec<RowSpec>,
    /// Non-zero for a general-admission section, which then has no rows.
    pub general_admission_capacity: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSpec {
    pub label: String,
    pub seat_labels: Vec<String>,
}

#[derive(Debug)]
pub struct RowLayout {
    pub label: String,
    pub seat_labels: Vec<String>,
    /// Index of the row's first seat; its seats are `first_seat..first_seat + len`.
    pub first_seat: u32,
    seat_by_label: HashMap<String, u32>,
}

#[derive(Debug)]
pub struct SectionLayout {
    pub section_id: String,
    pub name: String,
    /// Nearest the stage first. Empty for general admission.
    pub rows: Vec<RowLayout>,
    pub general_admission_capacity: u32,
    /// Reserved seats of this section are `first_seat..first_seat + seat_count`.
    pub first_seat: u32,
    pub seat_count: u32,
    row_by_label: HashMap<String, u32>,
}

impl SectionLayout {
    pub fn is_general_admission(&self) -> bool {
        self.general_admission_capacity > 0
    }

    /// Places sold in this section: its seats, or its general-admission capacity.
    pub fn capacity(&self) -> u32 {
        self.seat_count + self.general_admission_capacity
    }
}

#[derive(Debug)]
pub struct SeatMap {
    pub sections: Vec<SectionLayout>,
    section_by_label: HashMap<String, u16>,
    /// Reserved seats in the venue; seat indexes run from 0 to this.
    pub seat_count: u32,
    /// `(first seat, section, row)` of every row, ordered by first seat, to find a seat's row by
    /// binary search instead of storing a section per seat.
    row_starts: Vec<(u32, u16, u32)>,
    /// Identifies the layout: xxh3 of the sections as the admin gave them (postcard), the same on
    /// every node and build. Clients cache the layout by it.
    pub layout_version: u64,
}

/// Where a reserved seat sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatPosition {
    pub section: u16,
    pub row: u32,
    /// Position in the row, from the row's first seat.
    pub offset: u32,
}

pub fn validate_label(field: &str, label: &str) -> Result<()> {
    if label.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if label.len() > limits::LABEL_LENGTH_MAX {
        return Err(Error::invalid(
            field,
            format!("{} is longer than {} characters", quoted(label), limits::LABEL_LENGTH_MAX),
        ));
    }
    if let Some(bad) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.+".contains(*c))) {
        return Err(Error::invalid(
            field,
            format!("{} contains '{bad}'; labels use letters, digits and - _ . +", quoted(label)),
        ));
    }
    Ok(())
}

pub fn validate_name(field: &str, name: &str, required: bool) -> Result<()> {
    validate_text(field, name, limits::NAME_LENGTH_MAX)?;
    if required && name.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(())
}

pub fn validate_text(field: &str, text: &str, length_max: usize) -> Result<()> {
    if text.chars().count() > length_max {
        return Err(Error::invalid(field, format!("is longer than {length_max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

impl SeatMap {
    /// A map with no seats: the placeholder a deserialized inventory holds until its venue's map
    /// is put back.
    pub fn empty_shared() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            sections: Vec::new(),
            section_by_label: HashMap::new(),
            seat_count: 0,
            row_starts: Vec::new(),
            layout_version: 0,
        })
    }

    /// Validates the admin's sections and lays them out. Errors name the offending field as
    /// `sections[i].rows[j].seat_labels[k]`.
    pub fn build(sections: &[SectionSpec]) -> Result<Self> {
        if sections.is_empty() {
            return Err(Error::invalid("sections", "a venue needs at least one section"));
        }
        if sections.len() > limits::SECTIONS_PER_VENUE_MAX {
            return Err(Error::invalid(
                "sections",
                format!("at most {} sections per venue", limits::SECTIONS_PER_VENUE_MAX),
            ));
        }
        let mut layouts = Vec::with_capacity(sections.len());
        let mut section_by_label = HashMap::with_capacity(sections.len());
        let mut row_starts = Vec::new();
        let mut next_seat: u32 = 0;
        let mut places_total: u64 = 0;
        for (section_index, spec) in sections.iter().enumerate() {
            let field = format!("sections[{section_index}]");
            validate_label(&format!("{field}.section_id"), &spec.section_id)?;
            validate_name(&format!("{field}.name"), &spec.name, false)?;
            if section_by_label.insert(spec.section_id.clone(), section_index as u16).is_some() {
                return Err(Error::invalid(
                    format!("{field}.section_id"),
                    format!("duplicate section '{}'", spec.section_id),
                ));
            }
            let general = spec.general_admission_capacity > 0;
            if general && !spec.rows.is_empty() {
                return Err(Error::invalid(&field, "a section has rows or a general_admission_capacity, not both"));
            }
            if !general && spec.rows.is_empty() {
                return Err(Error::invalid(&field, "a section needs rows of seats or a general_admission_capacity"));
            }
            if spec.rows.len() > limits::ROWS_PER_SECTION_MAX {
                return Err(Error::invalid(
                    format!("{field}.rows"),
                    format!("at most {} rows per section", limits::ROWS_PER_SECTION_MAX),
                ));
            }
            let first_seat = next_seat;
            let mut rows = Vec::with_capacity(spec.rows.len());
            let mut row_by_label = HashMap::with_capacity(spec.rows.len());
            for (row_index, row) in spec.rows.iter().enumerate() {
                let row_field = format!("{field}.rows[{row_index}]");
                validate_label(&format!("{row_field}.label"), &row.label)?;
                if row_by_label.insert(row.label.clone(), row_index as u32).is_some() {
                    return Err(Error::invalid(
                        format!("{row_field}.label"),
                        format!("duplicate row '{}' in section '{}'", row.label, spec.section_id),
                    ));
                }
                if row.seat_labels.is_empty() {
                    return Err(Error::invalid(format!("{row_field}.seat_labels"), "a row needs at least one seat"));
                }
                if row.seat_labels.len() > limits::SEATS_PER_ROW_MAX {
                    return Err(Error::invalid(
                        format!("{row_field}.seat_labels"),
                        format!("at most {} seats per row", limits::SEATS_PER_ROW_MAX),
                    ));
                }
                places_total += row.seat_labels.len() as u64;
                if places_total > u64::from(limits::SEATS_PER_EVENT_MAX) {
                    return Err(Error::invalid(
                        "sections",
                        format!("a venue holds at most {} places", limits::SEATS_PER_EVENT_MAX),
                    ));
                }
                let mut seat_by_label = HashMap::with_capacity(row.seat_labels.len());
                for (seat_index, seat_label) in row.seat_labels.iter().enumerate() {
                    let seat_field = format!("{row_field}.seat_labels[{seat_index}]");
                    validate_label(&seat_field, seat_label)?;
                    if seat_by_label.insert(seat_label.clone(), seat_index as u32).is_some() {
                        return Err(Error::invalid(
                            seat_field,
                            format!("duplicate seat '{seat_label}' in row '{}'", row.label),
                        ));
                    }
                }
                row_starts.push((next_seat, section_index as u16, row_index as u32));
                rows.push(RowLayout {
                    label: row.label.clone(),
                    seat_labels: row.seat_labels.clone(),
                    first_seat: next_seat,
                    seat_by_label,
                });
                next_seat += row.seat_labels.len() as u32;
            }
            places_total += u64::from(spec.general_admission_capacity);
            if places_total > u64::from(limits::SEATS_PER_EVENT_MAX) {
                return Err(Error::invalid(
                    "sections",
                    format!("a venue holds at most {} places", limits::SEATS_PER_EVENT_MAX),
                ));
            }
            layouts.push(SectionLayout {
                section_id: spec.section_id.clone(),
                name: spec.name.clone(),
                rows,
                general_admission_capacity: spec.general_admission_capacity,
                first_seat,
                seat_count: next_seat - first_seat,
                row_by_label,
            });
        }
        let layout_version =
            xxhash_rust::xxh3::xxh3_64(&postcard::to_stdvec(sections).expect("section specs serialize"));
        Ok(Self { sections: layouts, section_by_label, seat_count: next_seat, row_starts, layout_version })
    }

    pub fn section_index(&self, section_id: &str) -> Option<u16> {
        self.section_by_label.get(section_id).copied()
    }

    /// Sellable places: reserved seats plus general-admission capacity.
    pub fn capacity(&self) -> u32 {
        self.sections.iter().map(SectionLayout::capacity).sum()
    }

    /// Parses `<section>:<row>:<seat>`. `Err` says why the id names no seat.
    pub fn seat_index(&self, seat_id: &str) -> std::result::Result<u32, String> {
        let mut parts = seat_id.split(':');
        let (Some(section_label), Some(row_label), Some(seat_label), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{} is not a seat id of the form <section>:<row>:<seat>", quoted(seat_id)));
        };
        let Some(&section_index) = self.section_by_label.get(section_label) else {
            return Err(format!("no section '{section_label}' in this venue"));
        };
        let section = &self.sections[section_index as usize];
        if section.is_general_admission() {
            return Err(format!(
                "section '{section_label}' is general admission and has no seat ids; hold it by quantity"
            ));
        }
        let Some(&row_index) = section.row_by_label.get(row_label) else {
            return Err(format!("no row '{row_label}' in section '{section_label}'"));
        };
        let row = &section.rows[row_index as usize];
        let Some(&offset) = row.seat_by_label.get(seat_label) else {
            return Err(format!("no seat '{seat_label}' in row '{row_label}' of section '{section_label}'"));
        };
        Ok(row.first_seat + offset)
    }

    pub fn position(&self, seat: u32) -> SeatPosition {
        assert!(seat < self.seat_count, "seat index {seat} out of range");
        let row_start = self.row_starts.partition_point(|&(first_seat, _, _)| first_seat <= seat) - 1;
        let (first_seat, section, row) = self.row_starts[row_start];
        SeatPosition { section, row, offset: seat - first_seat }
    }

    pub fn seat_id(&self, seat: u32) -> String {
        let position = self.position(seat);
        let section = &self.sections[position.section as usize];
        let row = &section.rows[position.row as usize];
        format!("{}:{}:{}", section.section_id, row.label, row.seat_labels[position.offset as usize])
    }

    /// The admin's sections back, for views.
    pub fn specs(&self) -> Vec<SectionSpec> {
        self.sections
            .iter()
            .map(|section| SectionSpec {
                section_id: section.section_id.clone(),
                name: section.name.clone(),
                rows: section
                    .rows
                    .iter()
                    .map(|row| RowSpec { label: row.label.clone(), seat_labels: row.seat_labels.clone() })
                    .collect(),
                general_admission_capacity: section.general_admission_capacity,
            })
            .collect()
    }
}

/// Rows labelled `row_labels`, each with seats numbered `1..=seats_per_row`; for demos and tests.
pub fn numbered_rows(row_labels: &[&str], seats_per_row: u32) -> Vec<RowSpec> {
    row_labels
        .iter()
        .map(|label| RowSpec {
            label: (*label).to_string(),
            seat_labels: (1..=seats_per_row).map(|number| number.to_string()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_sections() -> Vec<SectionSpec> {
        vec![
            SectionSpec {
                section_id: "101".into(),
                name: "Lower 101".into(),
                rows: numbered_rows(&["A", "B"], 10),
                general_admission_capacity: 0,
            },
            SectionSpec {
                section_id: "FLOOR".into(),
                name: "Floor".into(),
                rows: vec![],
                general_admission_capacity: 500,
            },
        ]
    }

    #[test]
    fn seat_ids_round_trip_through_indexes() {
        let map = SeatMap::build(&two_sections()).unwrap();
        assert_eq!(map.seat_count, 20);
        assert_eq!(map.capacity(), 520);
        for seat in 0..map.seat_count {
            assert_eq!(map.seat_index(&map.seat_id(seat)), Ok(seat));
        }
        assert_eq!(map.seat_id(10), "101:B:1");
    }

    #[test]
    fn unknown_and_general_admission_seat_ids_are_explained() {
        let map = SeatMap::build(&two_sections()).unwrap();
        assert!(map.seat_index("101:C:1").unwrap_err().contains("no row 'C'"));
        assert!(map.seat_index("102:A:1").unwrap_err().contains("no section '102'"));
        assert!(map.seat_index("101:A:11").unwrap_err().contains("no seat '11'"));
        assert!(map.seat_index("FLOOR:A:1").unwrap_err().contains("general admission"));
        assert!(map.seat_index("nonsense").unwrap_err().contains("<section>:<row>:<seat>"));
    }

    #[test]
    fn bad_seat_maps_name_the_field() {
        let mut sections = two_sections();
        sections[0].rows[1].seat_labels[3] = "2".into();
        let error = SeatMap::build(&sections).unwrap_err();
        assert_eq!(error, Error::invalid("sections[0].rows[1].seat_labels[3]", "duplicate seat '2' in row 'B'"));

        let mut sections = two_sections();
        sections[1].section_id = "1:1".into();
        let Error::InvalidArgument { field, .. } = SeatMap::build(&sections).unwrap_err() else {
            panic!("expected InvalidArgument");
        };
        assert_eq!(field, "sections[1].section_id");

        let mut sections = two_sections();
        sections[1].rows = numbered_rows(&["A"], 1);
        assert!(SeatMap::build(&sections).is_err());
        assert!(SeatMap::build(&[]).is_err());
    }
}
