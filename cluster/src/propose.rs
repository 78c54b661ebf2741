//! Proposing a command to a group, with bounds and clear errors.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

use crate::types::{Command, LogId, NodeId, Raft, Reply};

/// Largest command a group accepts. Well under the replication log's entry bound, so that a
/// command the log would refuse (which would stop the group) is refused before it is proposed.
pub const COMMAND_BYTES_MAX: usize = 1 << 20;
/// How long a proposal may wait for its commit by default.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("command of {0} bytes is over the {COMMAND_BYTES_MAX}-byte bound")]
    TooLarge(usize),
    /// This node does not lead the group; `leader` is the one it knows of, if any, with its
    /// replication address.
    #[error("not the leader of this group; the leader is {leader:?}")]
    NotLeader { leader: Option<(NodeId, String)> },
    #[error("no commit within {0:?}; the command may still commit")]
    Timeout(Duration),
    #[error("the group cannot take commands: {0}")]
    Unavailable(String),
}

/// Proposes `command` to `raft` and waits, at most `timeout`, until a majority has committed it
/// and this node has applied it. A timeout does not withdraw the command: it may still commit, so
/// a caller retries with the same idempotency key, never with a new command.
pub async fn propose(raft: &Raft, command: Command, timeout: Duration) -> Result<(LogId, Reply), ProposeError> {
    if command.0.len() > COMMAND_BYTES_MAX {
        return Err(ProposeError::TooLarge(command.0.len()));
    }
    match tokio::time::timeout(timeout, raft.client_write(command)).await {
        Err(_) => Err(ProposeError::Timeout(timeout)),
        Ok(Ok(response)) => Ok((response.log_id, response.data)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            let leader = forward.leader_id.zip(forward.leader_node.map(|node| node.addr));
            Err(ProposeError::NotLeader { leader })
        }
        Ok(Err(error)) => Err(ProposeError::Unavailable(error.to_string())),
    }
}
