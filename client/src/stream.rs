//! [`BookingStream`]: many callers' booking calls multiplexed onto one `BookingService.Book`
//! stream, answers matched to callers by request id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::book_request::Call;
use turnstile_proto::v1::book_response::Result as Answer;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;

/// Requests queued for the stream's writer.
const OUTGOING_BUFFER: usize = 4_096;

type Waiter = oneshot::Sender<Result<Answer, Status>>;

/// One open `Book` stream and the callers waiting for its answers.
struct Open {
    sender: mpsc::Sender<pb::BookRequest>,
    /// `None` once the stream has ended: no caller may wait on it any more.
    waiting: Mutex<Option<HashMap<u64, Waiter>>>,
}

impl Open {
    /// Ends the stream for everyone waiting on it: their outcome is unknown.
    fn close(&self, why: &Status) {
        let waiting = self.waiting.lock().expect("stream lock").take().unwrap_or_default();
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(Status::unavailable(format!(
                "the booking stream ended before the answer ({}: {}); the outcome is unknown: \
                 send it again with the same idempotency key",
                why.code(),
                why.message()
            ))));
        }
    }
}

/// Booking calls of many buyers on one stream. Cheap to clone; clones share the stream. Opened on
/// first use and again after it breaks.
#[derive(Clone)]
pub struct BookingStream {
    shared: Arc<Shared>,
}

struct Shared {
    channel: Channel,
    authorization: Option<MetadataValue<Ascii>>,
    retries: u32,
    next_id: AtomicU64,
    current: Mutex<Option<Arc<Open>>>,
}

impl BookingStream {
    pub(crate) fn new(channel: Channel, authorization: Option<MetadataValue<Ascii>>, retries: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                channel,
                authorization,
                retries,
                next_id: AtomicU64::new(1),
                current: Mutex::new(None),
            }),
        }
    }

    /// The open stream, or a new one. Its first message opens the call; answers are read by a
    /// task of its own, which ends the stream for every waiting caller when it breaks.
    fn open(&self) -> Arc<Open> {
        let mut current = self.shared.current.lock().expect("stream lock");
        let usable =
            |open: &&Arc<Open>| !open.sender.is_closed() && open.waiting.lock().expect("stream lock").is_some();
        if let Some(open) = current.as_ref().filter(usable) {
            return open.clone();
        }
        let (sender, receiver) = mpsc::channel(OUTGOING_BUFFER);
        let open = Arc::new(Open { sender, waiting: Mutex::new(Some(HashMap::new())) });
        *current = Some(open.clone());
        let mut request = Request::new(ReceiverStream::new(receiver));
        if let Some(authorization) = &self.shared.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        let mut client = BookingServiceClient::new(self.shared.channel.clone());
        let reader = open.clone();
        tokio::spawn(async move {
            let ended = match client.book(request).await {
                Err(status) => status,
                Ok(answers) => {
                    let mut answers = answers.into_inner();
                    loop {
                        match answers.message().await {
                            Ok(Some(answer)) => {
                                let waiter = reader
                                    .waiting
                                    .lock()
                                    .expect("stream lock")
                                    .as_mut()
                                    .and_then(|waiting| waiting.remove(&answer.request_id));
                                if let (Some(waiter), Some(result)) = (waiter, answer.result) {
                                    let _ = waiter.send(Ok(result));
                                }
                            }
                            Ok(None) => break Status::unavailable("the server ended the stream"),
                            Err(status) => break status,
                        }
                    }
                }
            };
            reader.close(&ended);
        });
        open
    }

    /// Sends one call and waits for its answer.
    async fn send_once(&self, token: &str, call: &Call) -> Result<Answer, Status> {
        let request_id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        let open = self.open();
        match open.waiting.lock().expect("stream lock").as_mut() {
            Some(waiting) => waiting.insert(request_id, waiter),
            None => return Err(Status::unavailable("the booking stream has just ended; nothing was sent")),
        };
        let request = pb::BookRequest { request_id, token: token.to_string(), call: Some(call.clone()) };
        if open.sender.send(request).await.is_err() {
            if let Some(waiting) = open.waiting.lock().expect("stream lock").as_mut() {
                waiting.remove(&request_id);
            }
            return Err(Status::unavailable("the booking stream has ended; nothing was sent"));
        }
        match answer.await {
            Ok(Ok(Answer::Error(error))) => Err(Status::new(Code::from(error.code), error.message)),
            Ok(result) => result,
            Err(_) => Err(Status::unavailable("the booking stream ended before the answer")),
        }
    }

    /// Sends a call, again on UNAVAILABLE when `retry` (the call cannot take effect twice).
    async fn send(&self, token: &str, call: Call, retry: bool) -> Result<Answer, Status> {
        let retries = if retry { self.shared.retries } else { 0 };
        super::retry(retries, &mut || self.send_once(token, &call)).await
    }

    /// Holds seats for the buyer of `token` (empty: the client's own token). A request without an
    /// idempotency key gets one, so the call is retried safely.
    pub async fn hold(&self, token: &str, mut request: pb::HoldSeatsRequest) -> Result<pb::HoldSeatsResponse, Status> {
        if request.idempotency_key.is_empty() {
            request.idempotency_key = super::idempotency_key();
        }
        match self.send(token, Call::Hold(request), true).await? {
            Answer::Hold(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    /// Confirms a hold; retried safely like `hold`.
    pub async fn confirm(
        &self,
        token: &str,
        mut request: pb::ConfirmHoldRequest,
    ) -> Result<pb::ConfirmHoldResponse, Status> {
        if request.idempotency_key.is_empty() {
            request.idempotency_key = super::idempotency_key();
        }
        match self.send(token, Call::Confirm(request), true).await? {
            Answer::Confirm(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn release(
        &self,
        token: &str,
        request: pb::ReleaseHoldRequest,
    ) -> Result<pb::ReleaseHoldResponse, Status> {
        match self.send(token, Call::Release(request), false).await? {
            Answer::Release(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn cancel(
        &self,
        token: &str,
        request: pb::CancelBookingRequest,
    ) -> Result<pb::CancelBookingResponse, Status> {
        match self.send(token, Call::Cancel(request), false).await? {
            Answer::Cancel(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn extend(&self, token: &str, request: pb::ExtendHoldRequest) -> Result<pb::ExtendHoldResponse, Status> {
        match self.send(token, Call::Extend(request), false).await? {
            Answer::Extend(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn get_hold(&self, token: &str, request: pb::GetHoldRequest) -> Result<pb::GetHoldResponse, Status> {
        match self.send(token, Call::GetHold(request), true).await? {
            Answer::GetHold(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(answer: &Answer) -> Status {
    Status::internal(format!("the server answered another kind of call: {answer:?}"))
}
