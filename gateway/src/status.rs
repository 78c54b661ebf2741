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

fn peer_state(peer: &pb::PeerStatus) -> String {
    if peer.reachable {
        "reachable".into()
    } else {
        format!("unreachable for {}", humantime::format_duration(Duration::from_secs(peer.unreachable_seconds)))
    }
}

/// `turnstile cluster status`: every configured node's answer (or why there was none), as a
/// table of nodes and a table of replication groups, each with the leader the nodes name and the
/// lag its leader reports.
pub fn render_cluster(nodes: &[(String, String, Result<pb::GetNodeStatusResponse, String>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<6} {:<10} {:>6}  PEERS NOT ANSWERING",
        "NODE", "ADDRESS", "STATE", "VERSION", "LEADS"
    );
    let mut groups: std::collections::BTreeMap<String, Vec<(&str, &pb::GroupStatus)>> = Default::default();
    for (node, address, answer) in nodes {
        match answer {
            Ok(status) => {
                let leads = status.groups.iter().filter(|group| group.leader_node_id == status.node_id).count();
                let silent: Vec<String> =
                    status.peers.iter().filter(|peer| !peer.reachable).map(|peer| peer.node_id.clone()).collect();
                let _ = writeln!(
                    out,
                    "{:<16} {:<24} {:<6} {:<10} {:>6}  {}",
                    node,
                    address,
                    "up",
                    status.version,
                    leads,
                    if silent.is_empty() { "-".to_string() } else { silent.join(", ") }
                );
                for group in &status.groups {
                    groups.entry(group.group.clone()).or_default().push((node.as_str(), group));
                }
            }
            Err(reason) => {
                let _ = writeln!(out, "{:<16} {:<24} {:<6} {:<10} {:>6}  {}", node, address, "down", "-", "-", reason);
            }
        }
    }
    let newest = nodes
        .iter()
        .filter_map(|(node, _, answer)| Some((node, answer.as_ref().ok()?)))
        .filter_map(|(node, status)| Some((node, status, status.membership.as_ref()?)))
        .max_by_key(|(_, _, membership)| membership.version);
    if let Some((node, status, membership)) = newest {
        let members: Vec<&str> = membership.nodes.iter().map(|member| member.node_id.as_str()).collect();
        let _ =
            writeln!(out, "\nmembership version {} (as {node} applied it): {}", membership.version, members.join(", "));
        if !status.configured_not_members.is_empty() || !status.members_not_configured.is_empty() {
            let _ = writeln!(
                out,
                "{node}'s configuration differs: lists non-members [{}], misses members [{}]; the membership wins",
                status.configured_not_members.join(", "),
                status.members_not_configured.join(", ")
            );
        }
    }
    let order =
        |name: &str| name.strip_prefix("shard ").and_then(|number| number.parse::<u64>().ok()).unwrap_or(u64::MAX);
    let mut names: Vec<&String> = groups.keys().collect();
    names.sort_by_key(|name| (order(name), (*name).clone()));
    let _ = writeln!(out, "\n{:<12} {:<16} {:>8}  REPLICAS ANSWERING (APPLIED)", "GROUP", "LEADER", "LAG");
    for name in names {
        let seen = &groups[name];
        // The leader the answering replicas name; a disagreement shows as "a | b".
        let mut leaders: Vec<&str> =
            seen.iter().map(|(_, group)| group.leader_node_id.as_str()).filter(|leader| !leader.is_empty()).collect();
        leaders.sort_unstable();
        leaders.dedup();
        let leader = if leaders.is_empty() { "(electing)".to_string() } else { leaders.join(" | ") };
        let lag = seen
            .iter()
            .find(|(node, group)| group.leader_node_id == *node)
            .map(|(_, group)| group.replication_lag.to_string())
            .unwrap_or_else(|| "-".into());
        let replicas: Vec<String> =
            seen.iter().map(|(node, group)| format!("{node} ({})", group.last_applied_index)).collect();
        // A group its leader reports as moving: its voters are not yet its target, or it has learners.
        let moving = seen
            .iter()
            .find(|(node, group)| group.leader_node_id == *node && !group.target_voters.is_empty())
            .filter(|(_, group)| group.voters != group.target_voters || !group.learners.is_empty())
            .map(|(_, group)| {
                format!(
                    "  moving: voters [{}] -> [{}], learners [{}]",
                    group.voters.join(", "),
                    group.target_voters.join(", "),
                    group.learners.join(", ")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(out, "{:<12} {:<16} {:>8}  {}{moving}", name, leader, lag, replicas.join(", "));
    }
    out
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
        let _ = writeln!(out, "\n{:<12} {:<16} {:>12} {:>12} {:>8}", "GROUP", "LEADER", "LAST INDEX", "APPLIED", "LAG");
        for group in &status.groups {
            let leader = if group.leader_node_id.is_empty() { "(electing)" } else { group.leader_node_id.as_str() };
            let lag =
                if group.leader_node_id == status.node_id { group.replication_lag.to_string() } else { "-".into() };
            let _ = writeln!(
                out,
                "{:<12} {:<16} {:>12} {:>12} {:>8}",
                group.group, leader, group.last_log_index, group.last_applied_index, lag
            );
        }
        let _ = writeln!(out, "\n{:<16} {:<24} {:>13}  STATE", "PEER", "ADDRESS", "GROUPS SHARED");
        for peer in &status.peers {
            let _ = writeln!(
                out,
                "{:<16} {:<24} {:>13}  {}",
                peer.node_id,
                peer.address,
                peer.groups_shared,
                peer_state(peer)
            );
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
                reachable: false,
                unreachable_seconds: 75,
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
        assert!(text.contains("unreachable for 1m 15s"), "{text}");

        let other = pb::GetNodeStatusResponse {
            node_id: "node-b".into(),
            version: "0.1.0".into(),
            groups: vec![pb::GroupStatus {
                group: "shard 3".into(),
                leader_node_id: "node-a".into(),
                last_applied_index: 40,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut led = status.clone();
        led.groups[0].replication_lag = 7;
        led.groups[0].last_applied_index = 42;
        let cluster = render_cluster(&[
            ("node-a".into(), "127.0.0.1:50051".into(), Ok(led)),
            ("node-b".into(), "127.0.0.1:50052".into(), Ok(other)),
            ("node-c".into(), "127.0.0.1:50053".into(), Err("connection refused".into())),
        ]);
        let row = |prefix: &str| cluster.lines().find(|line| line.starts_with(prefix)).unwrap_or_default().to_string();
        assert!(row("node-a").contains(" up ") && row("node-a").ends_with("node-b"), "{cluster}");
        assert!(row("node-c").contains(" down ") && row("node-c").ends_with("connection refused"), "{cluster}");
        let shard = row("shard 3");
        assert!(shard.contains("node-a") && shard.contains(" 7 ") && shard.contains("node-b (40)"), "{cluster}");
        assert!(row("catalog").contains("(electing)"), "{cluster}");
    }
}
