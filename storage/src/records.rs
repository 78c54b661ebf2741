//! The kinds of record the store keeps beside its log, each under `(kind, key)` in the records
//! table. One list for every crate that writes or reads records: a kind is named here once, not
//! as a string in each place that uses it. On disk and in replicated jobs a kind is its name.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum RecordKind {
    /// A venue of the catalog, with its seat map.
    Venue,
    Performer,
    /// An event's terms (dates, prices, hold TTL, status).
    Event,
    /// An event's waiting-room configuration.
    Queue,
    /// An event's waiting line: positions handed out, admissions, passes.
    QueueLine,
    /// A confirmed (or cancelled) booking.
    Booking,
    /// A replication group's last applied log id and membership (cluster nodes only).
    RaftAppliedState,
    /// The cluster's node list (ids and addresses) and its version, replicated by the catalog
    /// group: what shards are placed over (cluster nodes only).
    ClusterMembers,
}

impl RecordKind {
    /// The kinds that make up the catalog, read at start in this order (venues before the events
    /// that name them, events before their waiting rooms).
    pub const CATALOG: [RecordKind; 4] =
        [RecordKind::Venue, RecordKind::Performer, RecordKind::Event, RecordKind::Queue];

    pub const ALL: [RecordKind; 8] = [
        RecordKind::Venue,
        RecordKind::Performer,
        RecordKind::Event,
        RecordKind::Queue,
        RecordKind::QueueLine,
        RecordKind::Booking,
        RecordKind::RaftAppliedState,
        RecordKind::ClusterMembers,
    ];

    /// The kind's name on disk.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Venue => "venue",
            RecordKind::Performer => "performer",
            RecordKind::Event => "event",
            RecordKind::Queue => "queue",
            RecordKind::QueueLine => "queue_line",
            RecordKind::Booking => "booking",
            RecordKind::RaftAppliedState => "raft_applied_state",
            RecordKind::ClusterMembers => "cluster_members",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl From<RecordKind> for &'static str {
    fn from(kind: RecordKind) -> Self {
        kind.as_str()
    }
}

/// A name that is no record kind (a damaged or foreign job).
#[derive(Debug, thiserror::Error)]
#[error("unknown record kind {0:?}")]
pub struct UnknownRecordKind(String);

impl TryFrom<String> for RecordKind {
    type Error = UnknownRecordKind;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        RecordKind::ALL.into_iter().find(|kind| kind.as_str() == name).ok_or(UnknownRecordKind(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_travels_as_its_name_and_unknown_names_are_refused() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::try_from(kind.as_str().to_string()).unwrap(), kind);
            // postcard writes it as the string it always was.
            let bytes = postcard::to_allocvec(&kind).unwrap();
            assert_eq!(bytes, postcard::to_allocvec(kind.as_str()).unwrap());
            assert_eq!(postcard::from_bytes::<RecordKind>(&bytes).unwrap(), kind);
        }
        assert!(RecordKind::try_from("bookings".to_string()).is_err());
        assert!(postcard::from_bytes::<RecordKind>(&postcard::to_allocvec("nope").unwrap()).is_err());
    }
}
