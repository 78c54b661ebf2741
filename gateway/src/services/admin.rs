//! AdminService: the catalog, events, waiting rooms, pricing, tickets at the door, backups and
//! the node's status.

use tonic::{Request, Response, Status};
use turnstile_engine::catalog::{EventSpec, EventUpdate, PerformerSpec, VenueSpec};
use turnstile_engine::ids::{BookingId, EventId, PerformerId, VenueId};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_server::AdminService;

use turnstile_proto::v1::admin_service_client::AdminServiceClient;

use crate::convert;
use crate::error::{invalid, status};
use crate::forward::{forward_call, Kind, Routed};
use crate::state::Gateway;

/// The process's resident memory, from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    const PAGE_BYTES: u64 = 4_096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()))
        .map(|pages| pages * PAGE_BYTES)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl AdminService for Gateway {
    async fn create_venue(
        &self,
        request: Request<pb::CreateVenueRequest>,
    ) -> Result<Response<pb::CreateVenueResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let spec = VenueSpec {
            name: request.name,
            city: request.city,
            address: request.address,
            sections: convert::section_specs(request.sections),
        };
        let venue = self.engine.create_venue(spec).await.map_err(status)?;
        Ok(Response::new(pb::CreateVenueResponse { venue: Some(convert::venue(&venue)) }))
    }

    async fn create_performer(
        &self,
        request: Request<pb::CreatePerformerRequest>,
    ) -> Result<Response<pb::CreatePerformerResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let spec = PerformerSpec { name: request.name, description: request.description, genre: request.genre };
        let performer = self.engine.create_performer(spec).await.map_err(status)?;
        Ok(Response::new(pb::CreatePerformerResponse { performer: Some(convert::performer(&performer)) }))
    }

    async fn create_event(
        &self,
        request: Request<pb::CreateEventRequest>,
    ) -> Result<Response<pb::CreateEventResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let starts_at_ms = convert::required_time("starts_at", request.starts_at.as_ref())?;
        let ends_at_ms = convert::required_time("ends_at", request.ends_at.as_ref())?;
        let (currency, price_levels) = convert::price_levels(request.price_levels)?;
        let spec = EventSpec {
            name: request.name,
            description: request.description,
            category: request.category,
            venue_id: VenueId::new(request.venue_id),
            performer_ids: request.performer_ids.into_iter().map(PerformerId::new).collect(),
            starts_at_ms,
            ends_at_ms,
            currency,
            price_levels,
            hold_ttl_ms: (request.hold_ttl_seconds > 0).then(|| u64::from(request.hold_ttl_seconds) * 1_000),
            buyer_seat_limit: (request.buyer_seat_limit > 0).then_some(request.buyer_seat_limit),
        };
        let event = self.engine.create_event(spec).await.map_err(status)?;
        Ok(Response::new(pb::CreateEventResponse { event: Some(convert::event(&event, None)) }))
    }

    async fn update_event(
        &self,
        request: Request<pb::UpdateEventRequest>,
    ) -> Result<Response<pb::UpdateEventResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // It sets fields to values: sending it again changes nothing more.
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(AdminServiceClient::update_event))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let update = EventUpdate {
            name: request.name,
            description: request.description,
            category: request.category,
            starts_at_ms: request.starts_at.as_ref().map(|at| convert::unix_ms("starts_at", at)).transpose()?,
            ends_at_ms: request.ends_at.as_ref().map(|at| convert::unix_ms("ends_at", at)).transpose()?,
            hold_ttl_ms: request.hold_ttl_seconds.map(|seconds| u64::from(seconds) * 1_000),
            buyer_seat_limit: request.buyer_seat_limit,
        };
        let details = self.engine.update_event(&event_id, update).await.map_err(status)?;
        Ok(Response::new(pb::UpdateEventResponse {
            event: Some(convert::event(&details.info, Some(&details.overview))),
        }))
    }

    async fn cancel_event(
        &self,
        request: Request<pb::CancelEventRequest>,
    ) -> Result<Response<pb::CancelEventResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        match self.route(Some(&event_id), request, Kind::Once, forward_call!(AdminServiceClient::cancel_event)).await? {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let (details, holds_released, bookings_cancelled) =
            self.engine.cancel_event(&event_id).await.map_err(status)?;
        Ok(Response::new(pb::CancelEventResponse {
            event: Some(convert::event(&details.info, Some(&details.overview))),
            holds_released,
            bookings_cancelled,
        }))
    }

    async fn get_node_status(
        &self,
        request: Request<pb::GetNodeStatusRequest>,
    ) -> Result<Response<pb::GetNodeStatusResponse>, Status> {
        self.admin(&request)?;
        let (events_active, live_holds) = self.engine.activity();
        let mut response = pb::GetNodeStatusResponse {
            node_id: self.node_id.clone(),
            events_owned: self.engine.catalog().events().len() as u64,
            events_active,
            live_holds,
            resident_bytes: resident_bytes(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: Some(prost_types::Timestamp::from(self.node_info.started_at)),
            listen_address: self.node_info.listen_address.to_string(),
            metrics_address: self.node_info.metrics_address.map(|address| address.to_string()).unwrap_or_default(),
            data_directory: self.node_info.data_directory.display().to_string(),
            ..Default::default()
        };
        if let Some(router) = &self.router {
            let view = router.cluster_view();
            response.groups = view
                .groups
                .into_iter()
                .map(|group| pb::GroupStatus {
                    group: group.name,
                    leader_node_id: group.leader.unwrap_or_default(),
                    last_log_index: group.last_log_index,
                    last_applied_index: group.last_applied_index,
                    replication_lag: group.replication_lag,
                    voters: group.voters,
                    learners: group.learners,
                    target_voters: group.target_voters,
                })
                .collect();
            response.peers = view
                .peers
                .into_iter()
                .map(|peer| pb::PeerStatus {
                    node_id: peer.node,
                    address: peer.address,
                    groups_shared: peer.groups_shared,
                    reachable: peer.reachable,
                    unreachable_seconds: peer.unreachable_for.as_secs(),
                })
                .collect();
            if let Some(membership) = view.membership {
                response.configured_not_members = membership.configured_not_members.clone();
                response.members_not_configured = membership.members_not_configured.clone();
                response.membership = Some(membership_message(membership));
            }
        }
        if let Some(store) = self.engine.store() {
            let unavailable = |error: turnstile_storage::StoreError| Status::unavailable(error.to_string());
            response.log_entries = store.log_len().map_err(unavailable)?;
            response.log_last_index = store.last_index().map_err(unavailable)?;
            response.log_purged_index = store.purged_index().map_err(unavailable)?;
            response.database_bytes = std::fs::metadata(store.path()).map(|metadata| metadata.len()).unwrap_or(0);
            let stats = store.stats();
            let last_checkpoint_ms = stats.last_checkpoint_unix_ms.load(std::sync::atomic::Ordering::Relaxed);
            response.last_checkpoint_at = (last_checkpoint_ms > 0).then(|| convert::timestamp_u(last_checkpoint_ms));
            response.log_commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
            response.log_commands = stats.entries.load(std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Response::new(response))
    }

    async fn change_cluster_members(
        &self,
        request: Request<pb::ChangeClusterMembersRequest>,
    ) -> Result<Response<pb::ChangeClusterMembersResponse>, Status> {
        self.admin(&request)?;
        let outgoing = self.forwarding.outgoing_metadata(request.metadata())?;
        let request = request.into_inner();
        let mut add = Vec::with_capacity(request.add.len());
        for (position, node) in request.add.into_iter().enumerate() {
            let node_id = convert::id(&format!("add[{position}].node_id"), &node.node_id)?.to_string();
            let address = convert::id(&format!("add[{position}].address"), &node.address)?.to_string();
            add.push((node_id, address));
        }
        let mut remove = Vec::with_capacity(request.remove.len());
        for (position, node_id) in request.remove.into_iter().enumerate() {
            remove.push(convert::id(&format!("remove[{position}]"), &node_id)?.to_string());
        }
        let Some(router) = &self.router else { return Err(crate::routing::no_membership()) };
        let members = router.cluster_view().membership.map(|membership| membership.nodes).unwrap_or_default();
        for (position, (node_id, address)) in add.iter().enumerate() {
            // An id that is a member already is refused as such by the change itself.
            if !members.iter().any(|(member, _)| member == node_id) {
                self.probe_new_node(&outgoing, position, node_id, address).await?;
            }
        }
        let change = router.change_members(add, remove).await?;
        Ok(Response::new(pb::ChangeClusterMembersResponse {
            membership: Some(membership_message(change.membership)),
            replica_slots_moved: change.slots_moved,
            shards_changed: change.shards_changed,
        }))
    }

    async fn configure_queue(
        &self,
        request: Request<pb::ConfigureQueueRequest>,
    ) -> Result<Response<pb::ConfigureQueueResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let request = match self
            .route(Some(&event_id), request, Kind::Once, forward_call!(AdminServiceClient::configure_queue))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let config = crate::services::queue::config(&request)?;
        let progress = self.engine.configure_queue(&event_id, config.clone()).await.map_err(status)?;
        Ok(Response::new(crate::services::queue::configured(&event_id, &config, &progress)))
    }

    async fn set_pricing(
        &self,
        request: Request<pb::SetPricingRequest>,
    ) -> Result<Response<pb::SetPricingResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // It replaces the rules: sending it again changes nothing more.
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(AdminServiceClient::set_pricing))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let rules = request.rules.map(convert::pricing_rules);
        let details = self.engine.set_pricing(&event_id, rules).await.map_err(status)?;
        let response = convert::event_details(&details, false);
        Ok(Response::new(pb::SetPricingResponse { availability: response.availability }))
    }

    async fn redeem_ticket(
        &self,
        request: Request<pb::RedeemTicketRequest>,
    ) -> Result<Response<pb::RedeemTicketResponse>, Status> {
        self.admin(&request)?;
        // The code names its booking, whose id names the event. A code this cluster did not sign
        // is answered here (FORGED).
        let event_id = self
            .admission
            .verify_ticket_code(request.get_ref().code.trim())
            .and_then(|claims| BookingId::new(claims.bkg).event_id());
        // A second redemption answers ALREADY_USED: never sent twice.
        let request = match self
            .route(event_id.as_ref(), request, Kind::Once, forward_call!(AdminServiceClient::redeem_ticket))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        Ok(Response::new(self.redeem(&request.get_ref().code).await?))
    }

    async fn get_event_report(
        &self,
        request: Request<pb::GetEventReportRequest>,
    ) -> Result<Response<pb::GetEventReportResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(AdminServiceClient::get_event_report))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        Ok(Response::new(self.report(&event_id).await?))
    }

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::CreateBackupResponse>, Status> {
        self.admin(&request)?;
        let requested = convert::id("path", &request.get_ref().path)?;
        let Some(store) = self.engine.store().cloned() else {
            return Err(Status::failed_precondition("this node runs in memory only and has nothing to back up"));
        };
        let path = backup_path(&self.backup_dir, requested)?;
        let target = path.clone();
        // A backup reads the whole database: keep it off the async workers.
        tokio::task::spawn_blocking(move || store.backup(&target))
            .await
            .map_err(|error| Status::internal(format!("backup task failed: {error}")))?
            .map_err(|error| invalid("path", error))?;
        let size_bytes = std::fs::metadata(&path).map(|metadata| metadata.len()).unwrap_or(0);
        tracing::info!(path = %path.display(), size_bytes, "backup taken");
        Ok(Response::new(pb::CreateBackupResponse { path: path.display().to_string(), size_bytes }))
    }
}

/// Where a requested backup goes: a relative path is resolved in `backup_dir` (created if
/// missing, but nothing below it is), an absolute one must lie in it, and neither may climb out
/// with `..`. Refusals name the field and the backup directory.
fn backup_path(backup_dir: &std::path::Path, requested: &str) -> Result<std::path::PathBuf, Status> {
    use std::path::Component;
    std::fs::create_dir_all(backup_dir).map_err(|error| {
        Status::failed_precondition(format!("backup directory {} cannot be created: {error}", backup_dir.display()))
    })?;
    let base = backup_dir
        .canonicalize()
        .map_err(|error| Status::failed_precondition(format!("backup directory {}: {error}", backup_dir.display())))?;
    let requested = std::path::Path::new(requested);
    let relative = if requested.is_absolute() {
        let inside = requested.strip_prefix(&base).or_else(|_| requested.strip_prefix(backup_dir));
        inside.map(std::path::Path::to_path_buf).map_err(|_| {
            Status::invalid_argument(format!(
                "path: backups go in the backup directory {}; give a path in it or relative to it",
                base.display()
            ))
        })?
    } else {
        requested.to_path_buf()
    };
    if relative.as_os_str().is_empty()
        || relative.components().any(|component| !matches!(component, Component::Normal(_)))
    {
        return Err(Status::invalid_argument(format!(
            "path: must name a file in the backup directory {} without '..' or '.'",
            base.display()
        )));
    }
    let path = base.join(&relative);
    if !path.parent().is_some_and(std::path::Path::is_dir) {
        return Err(Status::invalid_argument(format!(
            "path: directory {} does not exist in the backup directory; create it first",
            path.parent().map(|parent| parent.display().to_string()).unwrap_or_default()
        )));
    }
    Ok(path)
}

/// How long a node to be added has to answer whether it runs.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Gateway {
    /// A node is added only if it runs at its address and is the node named: asked with the
    /// caller's admin token (`GetNodeStatus`), it must answer with that id. Otherwise its shards
    /// would wait for a replica that never comes.
    async fn probe_new_node(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        position: usize,
        node_id: &str,
        address: &str,
    ) -> Result<(), Status> {
        if address.parse::<std::net::SocketAddr>().is_err() {
            // Refused with its reason by the membership change itself.
            return Ok(());
        }
        let mut probe = Request::from_parts(metadata.clone(), Default::default(), pb::GetNodeStatusRequest {});
        probe.set_timeout(PROBE_TIMEOUT);
        let channel = self.forwarding.channel(node_id, address)?;
        let mut client = turnstile_proto::v1::admin_service_client::AdminServiceClient::new(channel);
        let answer = tokio::time::timeout(PROBE_TIMEOUT, client.get_node_status(probe)).await;
        let status = match answer {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(refused)) if refused.code() == tonic::Code::Unauthenticated => {
                return Err(Status::failed_precondition(format!(
                    "add[{position}]: the node at {address} refuses this admin token ({}); every node needs the same \
                     auth.secret",
                    refused.message()
                )))
            }
            Ok(Err(refused)) => {
                return Err(Status::failed_precondition(format!(
                    "add[{position}].address: the node at {address} does not answer ({}); start it first with \
                     `turnstile serve --node {node_id} --join`",
                    refused.message()
                )))
            }
            Err(_) => {
                return Err(Status::failed_precondition(format!(
                    "add[{position}].address: nothing answers at {address} within {PROBE_TIMEOUT:?}; start the node \
                     first with `turnstile serve --node {node_id} --join`"
                )))
            }
        };
        if status.node_id != node_id {
            return Err(Status::invalid_argument(format!(
                "add[{position}].node_id: the node at {address} is '{}', not '{node_id}'",
                status.node_id
            )));
        }
        if status.membership.is_none() {
            return Err(Status::failed_precondition(format!(
                "add[{position}]: the node at {address} runs alone; start it with `turnstile serve --node {node_id} \
                 --join` and the cluster's config"
            )));
        }
        Ok(())
    }
}

fn membership_message(membership: crate::routing::MembershipView) -> pb::ClusterMembership {
    pb::ClusterMembership {
        version: membership.version,
        nodes: membership.nodes.into_iter().map(|(node_id, address)| pb::ClusterNode { node_id, address }).collect(),
        shards: membership.shards,
        replicas: membership.replicas,
    }
}
