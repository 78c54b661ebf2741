//! CatalogService: GetEvent, SearchEvents, WatchEvent.

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use turnstile_engine::ids::EventId;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::catalog_service_server::CatalogService;

use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;

use crate::convert;
use crate::error::status;
use crate::forward::{forward_call, Kind, Routed};
use crate::state::Gateway;

/// Messages of one watch stream waiting for the client to read them.
const WATCH_STREAM_BUFFER: usize = 64;

#[tonic::async_trait]
impl CatalogService for Gateway {
    async fn get_event(&self, request: Request<pb::GetEventRequest>) -> Result<Response<pb::GetEventResponse>, Status> {
        self.check_catalog_reader(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(CatalogServiceClient::get_event))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let details = self.engine.event_details(&event_id, request.include_seats).await.map_err(status)?;
        Ok(Response::new(convert::event_details(&details, request.include_layout)))
    }

    async fn search_events(
        &self,
        request: Request<pb::SearchEventsRequest>,
    ) -> Result<Response<pb::SearchEventsResponse>, Status> {
        self.check_catalog_reader(&request)?;
        let response = crate::search::search(&self.engine, &self.search, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    type WatchEventStream = ReceiverStream<Result<pb::WatchEventResponse, Status>>;

    async fn watch_event(
        &self,
        request: Request<pb::WatchEventRequest>,
    ) -> Result<Response<Self::WatchEventStream>, Status> {
        self.check_catalog_reader(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let request = match self
            .route(Some(&event_id), request, Kind::Stream, forward_call!(CatalogServiceClient::watch_event))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(self.pipe(response)),
        }
        .into_inner();
        let (mut watch, permit) = self.engine.watch_event(&event_id, request.after_version).await.map_err(status)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(WATCH_STREAM_BUFFER);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                // A client that stops reading fills this channel; the watch then lags behind the
                // event's feed and resumes from a snapshot, while the event actor never waits.
                let message = tokio::select! {
                    item = watch.next() => item.map(|item| convert::watch_item(&item)).map_err(status),
                    () = sender.closed() => break,
                    _ = stopping.wait_for(|stopping| *stopping) => Err(Status::unavailable("the server is stopping")),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
