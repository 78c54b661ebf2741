//! `turnstile status`: a node's `GetNodeStatus` answer as an operator reads it.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use turnstile_proto::v1 as pb;

fn system_time(timestamp: &prost_types::Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::new(timestamp.seconds.max(0) as u64, timestamp.nanos.clamp(0, 999_999_999) as u32)
}

/// "2026-12-06T07:01:02Z (3h 2m 1s ago)", to the second.
fn moment(timestamp: &prost_types::Timestamp, now: SystemTime) -> String {
    let at = system_time(timestamp);
    let ago = now.duration_since(at).unwrap_or_default();
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_seconds(at),
        humantime::format_duration(Duration::from_secs(ago.as_secs()))
    )
}

fn bytes(count: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    format!("{:.1} MiB", count as f64 / MIB)
}

/// The status as aligned lines, times in UTC with how long ago they were.
pub fn render(status: &pb::GetNodeStatusResponse, now: SystemTime) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<18} {value}");
    };
    line("node", format!("{} (turnstile {})", status.node_id, status.version));
    line("started", status.started_at.as_ref().map(|at| moment(at, now)).unwrap_or_else(|| "unknown".into()));
    line("gRPC address", status.listen_address.clone());
    line(
        "metrics address",
        if status.metrics_address.is_empty() { "off".into() } else { status.metrics_address.clone() },
    );
    line("data directory", status.data_directory.clone());
    line("events owned", format!("{} ({} active)", status.events_owned, status.events_active));
    line("live holds", status.live_holds.to_string());
    line(
        "log",
        format!(
            "{} entries, last index {}, purged to {}",
            status.log_entries, status.log_last_index, status.log_purged_index
        ),
    );
    line("log commits", format!("{} carrying {} commands", status.log_commits, status.log_commands));
    line("database", bytes(status.database_bytes));
    line("memory", format!("{} resident", bytes(status.resident_bytes)));
    line(
        "last checkpoint",
        status.last_checkpoint_at.as_ref().map(|at| moment(at, now)).unwrap_or_else(|| "none since start".into()),
    );
    if !status.groups.is_empty() {
        let leading = status.groups.iter().filter(|group| group.leader_node_id == status.node_id).count();
        let electing = status.groups.iter().filter(|group| group.leader_node_id.is_empty()).count();
        line(
            "cluster",
            format!(
                "{} groups here, {leading} led by this node, {electing} electing; {} peers",
                status.groups.len(),
                status.peers.len()
            ),
        );
        let _ = writeln!(out, "\n{:<12} {:<16} {:>12} {:>12}", "GROUP", "LEADER", "LAST INDEX", "APPLIED");
        for group in &status.groups {
            let leader = if group.leader_node_id.is_empty() { "(electing)" } else { group.leader_node_id.as_str() };
            let _ = writeln!(
                out,
                "{:<12} {:<16} {:>12} {:>12}",
                group.group, leader, group.last_log_index, group.last_applied_index
            );
        }
        let _ = writeln!(out, "\n{:<16} {:<24} {:>13}", "PEER", "ADDRESS", "GROUPS SHARED");
        for peer in &status.peers {
            let _ = writeln!(out, "{:<16} {:<24} {:>13}", peer.node_id, peer.address, peer.groups_shared);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_their_age_and_groups_are_listed() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let status = pb::GetNodeStatusResponse {
            node_id: "node-a".into(),
            version: "0.1.0".into(),
            started_at: Some(prost_types::Timestamp { seconds: 1_800_000_000 - 3_725, nanos: 0 }),
            listen_address: "127.0.0.1:50051".into(),
            data_directory: "/srv/turnstile/node-a".into(),
            groups: vec![
                pb::GroupStatus { group: "shard 3".into(), leader_node_id: "node-a".into(), ..Default::default() },
                pb::GroupStatus { group: "catalog".into(), leader_node_id: String::new(), ..Default::default() },
            ],
            peers: vec![pb::PeerStatus {
                node_id: "node-b".into(),
                address: "127.0.0.1:50052".into(),
                groups_shared: 2,
            }],
            ..Default::default()
        };
        let text = render(&status, now);
        assert!(text.contains("node-a (turnstile 0.1.0)"), "{text}");
        assert!(text.contains("2027-01-15T06:57:55Z (1h 2m 5s ago)"), "{text}");
        assert!(text.contains("metrics address    off"), "{text}");
        assert!(text.contains("2 groups here, 1 led by this node, 1 electing; 1 peers"), "{text}");
        assert!(text.contains("(electing)") && text.contains("node-b") && text.contains("127.0.0.1:50052"), "{text}");
        assert!(text.contains("last checkpoint    none since start"), "{text}");
    }
}
