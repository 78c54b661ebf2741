//! `BookingService.Book`: a backend's many booking calls on one bidirectional stream. Each request
//! is handed to the unary method it carries, as a call of its own: the buyer's token (the
//! message's, or the stream's `authorization`), the client's address and nothing else travel with
//! it, so validation, authorization, rate limits, idempotency and forwarding are the unary call's.
//! Answers go back tagged with the request's id as they finish, in any order.

use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Status};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::book_request::Call;
use turnstile_proto::v1::book_response::Result as Answer;
use turnstile_proto::v1::booking_service_server::BookingService;

use crate::state::Gateway;

pub type BookStream = ReceiverStream<Result<pb::BookResponse, Status>>;

/// Answers waiting for the client to read them.
const ANSWER_BUFFER: usize = 256;

/// What every request of a stream inherits from it.
#[derive(Clone)]
struct Origin {
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    tcp: Option<tonic::transport::server::TcpConnectInfo>,
    tls: Option<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>,
}

pub fn serve(gateway: Gateway, request: Request<tonic::Streaming<pb::BookRequest>>) -> BookStream {
    let origin = Origin {
        authorization: request.metadata().get("authorization").cloned(),
        tcp: request.extensions().get::<tonic::transport::server::TcpConnectInfo>().cloned(),
        tls: request
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
            .cloned(),
    };
    let mut incoming = request.into_inner();
    let (sender, receiver) = tokio::sync::mpsc::channel(ANSWER_BUFFER);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(gateway.stream_requests_in_flight_max));
    let mut stopping = gateway.stopping.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = incoming.message() => Some(message),
                _ = stopping.wait_for(|stopping| *stopping) => None,
            };
            let Some(message) = message else {
                let _ = sender.send(Err(Status::unavailable("the server is stopping"))).await;
                break;
            };
            let request = match message {
                Ok(Some(request)) => request,
                // The client is done sending; the answers in flight still go out, and the
                // stream ends when the last is sent.
                Ok(None) => break,
                // A message that does not decode ends the stream with its status (INVALID_ARGUMENT
                // from the codec); a broken stream ends it too. The requests in flight finish
                // (what they change is durable and their idempotency keys answer a retry), but
                // their answers have no one to go to.
                Err(status) => {
                    let _ = sender.send(Err(status)).await;
                    break;
                }
            };
            let request_id = request.request_id;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                let refusal = Status::resource_exhausted(format!(
                    "more than {} requests in flight on this stream (limits.stream_requests_in_flight_max)",
                    gateway.stream_requests_in_flight_max
                ));
                if sender.send(Ok(failed(request_id, &refusal))).await.is_err() {
                    break;
                }
                continue;
            };
            let (gateway, origin, sender) = (gateway.clone(), origin.clone(), sender.clone());
            tokio::spawn(async move {
                let answer = answer(&gateway, &origin, request).await;
                drop(permit);
                let _ = sender.send(Ok(answer)).await;
            });
        }
    });
    ReceiverStream::new(receiver)
}

fn failed(request_id: u64, status: &Status) -> pb::BookResponse {
    pb::BookResponse {
        request_id,
        result: Some(Answer::Error(pb::CallError {
            code: status.code() as i32,
            message: status.message().to_string(),
        })),
    }
}

/// The unary call a request carries, as the service would see it arrive on its own.
fn call<T>(origin: &Origin, token: &str, message: T) -> Result<Request<T>, Status> {
    let mut metadata = MetadataMap::new();
    if token.is_empty() {
        if let Some(authorization) = &origin.authorization {
            metadata.insert("authorization", authorization.clone());
        }
    } else {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::unauthenticated("token: not printable ASCII"))?;
        metadata.insert("authorization", value);
    }
    let mut request = Request::from_parts(metadata, Default::default(), message);
    if let Some(tcp) = &origin.tcp {
        request.extensions_mut().insert(tcp.clone());
    }
    if let Some(tls) = &origin.tls {
        request.extensions_mut().insert(tls.clone());
    }
    Ok(request)
}

async fn answer(gateway: &Gateway, origin: &Origin, request: pb::BookRequest) -> pb::BookResponse {
    let request_id = request.request_id;
    let token = request.token;
    let result = async {
        Ok(match request.call {
            None => {
                return Err(Status::invalid_argument(
                    "call: set one of hold, confirm, release, cancel, extend, get_hold",
                ))
            }
            Some(Call::Hold(message)) => {
                Answer::Hold(gateway.hold_seats(call(origin, &token, message)?).await?.into_inner())
            }
            Some(Call::Confirm(message)) => {
                Answer::Confirm(gateway.confirm_hold(call(origin, &token, message)?).await?.into_inner())
            }
            Some(Call::Release(message)) => {
                Answer::Release(gateway.release_hold(call(origin, &token, message)?).await?.into_inner())
            }
            Some(Call::Cancel(message)) => {
                Answer::Cancel(gateway.cancel_booking(call(origin, &token, message)?).await?.into_inner())
            }
            Some(Call::Extend(message)) => {
                Answer::Extend(gateway.extend_hold(call(origin, &token, message)?).await?.into_inner())
            }
            Some(Call::GetHold(message)) => {
                Answer::GetHold(gateway.get_hold(call(origin, &token, message)?).await?.into_inner())
            }
        })
    };
    match result.await {
        Ok(answer) => pb::BookResponse { request_id, result: Some(answer) },
        Err(status) => failed(request_id, &status),
    }
}
