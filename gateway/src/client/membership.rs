//! `turnstile cluster ...`: the operator's commands for a cluster's nodes (docs/CLUSTER.md).
//!
//! - `status` asks every node of the configuration's [[nodes]], then every member those answers
//!   name that the configuration does not, and prints the nodes and the replication groups;
//! - `add-node`, `remove-node` and `replace-node` send one `ChangeClusterMembers` to the first
//!   node that answers, then (unless told not to wait) follow the shards as they move, until
//!   every group's leader reports the voters the new membership places on it and no learner.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;

use crate::client::{Connection, Identity};
use crate::config::Config;

/// One node's answer to `GetNodeStatus`, or why there was none: (id, address, answer).
pub type Answer = (String, String, Result<pb::GetNodeStatusResponse, String>);

/// How often a waiting change asks the nodes again.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

fn connection(config: &Option<PathBuf>, address: &str) -> Connection {
    Connection { server: Some(address.to_string()), config: config.clone(), ..Default::default() }
}

async fn status_of(
    config: &Option<PathBuf>,
    address: &str,
    timeout: Duration,
) -> Result<pb::GetNodeStatusResponse, String> {
    let answer = async {
        let target = connection(config, address).target(Identity::Admin { subject: "turnstile-cluster" })?;
        let mut client = AdminServiceClient::new(target.connect().await?);
        let status = client.get_node_status(target.request(pb::GetNodeStatusRequest {})).await?;
        anyhow::Ok(status.into_inner())
    };
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(error)) => Err(crate::client::describe(&error).trim_start_matches("error: ").to_string()),
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

/// Every configured node's status, then that of every member the answers name (at the newest
/// membership version any of them reports) that the configuration does not list.
pub async fn gather(config: &Option<PathBuf>, loaded: &Config, timeout: Duration) -> Vec<Answer> {
    let mut asked: BTreeMap<String, String> =
        loaded.nodes.iter().map(|node| (node.id.clone(), node.address.to_string())).collect();
    let mut answers = Vec::new();
    for (node, address) in &asked {
        answers.push((node.clone(), address.clone(), status_of(config, address, timeout).await));
    }
    let newest = answers
        .iter()
        .filter_map(|(_, _, answer)| answer.as_ref().ok()?.membership.clone())
        .max_by_key(|membership| membership.version);
    if let Some(membership) = newest {
        for member in membership.nodes {
            if asked.contains_key(&member.node_id) {
                continue;
            }
            let answer = status_of(config, &member.address, timeout).await;
            answers.push((member.node_id.clone(), member.address.clone(), answer));
            asked.insert(member.node_id, member.address);
        }
    }
    answers
}

/// How far the groups are from `membership`: (groups settled, groups in all, what the others
/// wait for). A group is settled when a node that leads it, and has applied `membership`,
/// reports its voters as their target and no learner.
pub fn progress(answers: &[Answer], membership: &pb::ClusterMembership) -> (usize, usize, Vec<String>) {
    let mut wanted: Vec<String> = (0..membership.shards).map(|shard| format!("shard {shard}")).collect();
    wanted.push("catalog".into());
    let mut settled = 0;
    let mut waiting = Vec::new();
    for group in &wanted {
        let leader_view = answers.iter().find_map(|(node, _, answer)| {
            let status = answer.as_ref().ok()?;
            let seen = status.groups.iter().find(|seen| &seen.group == group && &seen.leader_node_id == node)?;
            let applied = status.membership.as_ref().is_some_and(|applied| applied.version >= membership.version);
            Some((applied, seen))
        });
        match leader_view {
            Some((true, seen))
                if !seen.target_voters.is_empty() && seen.learners.is_empty() && {
                    let voters: BTreeSet<&String> = seen.voters.iter().collect();
                    voters == seen.target_voters.iter().collect()
                } =>
            {
                settled += 1
            }
            Some((true, seen)) => waiting.push(format!(
                "{group}: voters [{}] -> [{}]{}",
                seen.voters.join(", "),
                seen.target_voters.join(", "),
                if seen.learners.is_empty() {
                    String::new()
                } else {
                    format!(", learners [{}]", seen.learners.join(", "))
                }
            )),
            Some((false, _)) => waiting.push(format!("{group}: its leader has not applied the change yet")),
            None => waiting.push(format!("{group}: no leader answering")),
        }
    }
    (settled, wanted.len(), waiting)
}

/// Sends the change to the first configured node that answers, prints what it did, and waits
/// (up to `wait`, unless `None`) until every group has settled on the new membership.
pub async fn change(
    config: Option<PathBuf>,
    loaded: &Config,
    add: Vec<pb::ClusterNode>,
    remove: Vec<String>,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let request = pb::ChangeClusterMembersRequest { add, remove };
    let mut last_error = None;
    let mut answer = None;
    for node in &loaded.nodes {
        let address = node.address.to_string();
        let attempt = async {
            let target = connection(&config, &address).target(Identity::Admin { subject: "turnstile-cluster" })?;
            let mut client = AdminServiceClient::new(target.connect().await?);
            let reply = client.change_cluster_members(target.request(request.clone())).await?;
            anyhow::Ok(reply.into_inner())
        };
        match attempt.await {
            Ok(reply) => {
                answer = Some(reply);
                break;
            }
            // A node that answered with a refusal (a bad request, a concurrent change) speaks
            // for the cluster; one that could not be reached does not.
            Err(error)
                if error.downcast_ref::<tonic::Status>().is_some_and(|status| {
                    !matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
                }) =>
            {
                return Err(error)
            }
            Err(error) => last_error = Some(error.context(format!("node {} at {address}", node.id))),
        }
    }
    let Some(answer) = answer else {
        return Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the config lists no [[nodes]] to ask")));
    };
    let membership = answer.membership.context("the node answered no membership")?;
    let nodes: Vec<String> =
        membership.nodes.iter().map(|node| format!("{} ({})", node.node_id, node.address)).collect();
    println!(
        "membership version {}: {}\n{} replica slots move, in {} of {} shards",
        membership.version,
        nodes.join(", "),
        answer.replica_slots_moved,
        answer.shards_changed,
        membership.shards
    );
    let Some(wait) = wait else { return Ok(()) };
    let started = Instant::now();
    let mut last_settled = usize::MAX;
    loop {
        let mut answers = Vec::new();
        for node in &membership.nodes {
            let status = status_of(&config, &node.address, Duration::from_secs(2)).await;
            answers.push((node.node_id.clone(), node.address.clone(), status));
        }
        let (settled, total, waiting) = progress(&answers, &membership);
        if settled == total {
            println!(
                "every group settled on version {} in {:.1} s",
                membership.version,
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if settled != last_settled {
            last_settled = settled;
            println!("{settled} of {total} groups settled ({:.1} s)", started.elapsed().as_secs_f64());
        }
        if started.elapsed() > wait {
            anyhow::bail!(
                "not settled within {} s ({settled} of {total} groups); still waiting: {}",
                wait.as_secs(),
                waiting.into_iter().take(8).collect::<Vec<_>>().join("; ")
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, leader: &str, voters: &[&str], learners: &[&str], target: &[&str]) -> pb::GroupStatus {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        pb::GroupStatus {
            group: name.into(),
            leader_node_id: leader.into(),
            voters: names(voters),
            learners: names(learners),
            target_voters: names(target),
            ..Default::default()
        }
    }

    fn answer(node: &str, version: u64, groups: Vec<pb::GroupStatus>) -> Answer {
        let status = pb::GetNodeStatusResponse {
            node_id: node.into(),
            groups,
            membership: Some(pb::ClusterMembership { version, ..Default::default() }),
            ..Default::default()
        };
        (node.into(), "127.0.0.1:1".into(), Ok(status))
    }

    #[test]
    fn a_group_settles_when_its_leader_has_its_target_voters_and_no_learner() {
        let membership = pb::ClusterMembership { version: 2, shards: 2, ..Default::default() };
        let abc = ["a", "b", "c"];
        let answers = vec![
            answer("a", 2, vec![group("shard 0", "a", &abc, &[], &abc), group("catalog", "a", &abc, &[], &abc)]),
            // b leads shard 1, which still has a learner.
            answer("b", 2, vec![group("shard 1", "b", &["a", "b", "d"], &["c"], &["a", "b", "d"])]),
        ];
        let (settled, total, waiting) = progress(&answers, &membership);
        assert_eq!((settled, total), (2, 3));
        assert!(waiting[0].starts_with("shard 1: voters [a, b, d] -> [a, b, d], learners [c]"), "{waiting:?}");
        // A leader that has not applied the change yet does not count, nor a group nobody leads.
        let behind = vec![answer("a", 1, vec![group("shard 0", "a", &abc, &[], &abc)])];
        let (settled, _, waiting) = progress(&behind, &membership);
        assert_eq!(settled, 0);
        assert!(waiting[0].contains("has not applied"), "{waiting:?}");
        assert!(waiting[1].contains("no leader answering"), "{waiting:?}");
    }
}
