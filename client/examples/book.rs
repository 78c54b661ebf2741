//! Books two seats on a running node, as a site's backend would: view the event, hold the best two
//! seats of a section on the booking stream, confirm the hold, list the buyer's bookings.
//!
//! ```sh
//! cargo run --release -p turnstile -- serve --demo        # in another terminal
//! TOKEN=$(cargo run -q --release -p turnstile -- token --user alice) \
//!     cargo run -p turnstile-client --example book -- http://127.0.0.1:50051 evt_00000000000000e1 101
//! ```

use turnstile_client::{pb, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let endpoint = arguments.next().unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let event_id = arguments.next().unwrap_or_else(|| "evt_00000000000000e1".into());
    let section_id = arguments.next().unwrap_or_else(|| "101".into());
    let token = std::env::var("TOKEN").map_err(|_| "set TOKEN to a buyer's token (turnstile token --user NAME)")?;

    let client = Client::builder(endpoint).token(&token).connect().await?;
    let event = client.get_event(pb::GetEventRequest { event_id: event_id.clone(), ..Default::default() }).await?;
    let name = event.event.map(|event| event.name).unwrap_or_default();
    let available: u32 = event.availability.iter().map(|row| row.available).sum();
    println!("{name}: {available} places available");

    // On the stream: an empty token means the client's own.
    let hold = client
        .stream()
        .hold(
            "",
            pb::HoldSeatsRequest {
                event_id,
                selection: Some(pb::hold_seats_request::Selection::BestAvailable(pb::BestAvailable {
                    section_id,
                    quantity: 2,
                })),
                ..Default::default()
            },
        )
        .await?
        .hold
        .ok_or("no hold in the answer")?;
    let seats: Vec<&str> = hold.tickets.iter().map(|ticket| ticket.seat_id.as_str()).collect();
    println!("held {} until {:?}", seats.join(", "), hold.expires_at);

    let booking = client
        .confirm(pb::ConfirmHoldRequest {
            hold_id: hold.hold_id.clone(),
            payment_reference: "example-payment".into(),
            ..Default::default()
        })
        .await?;
    println!("booked {}", booking.booking_id);
    let bookings = client.list_bookings(pb::ListBookingsRequest::default()).await?;
    println!("{} booking(s) for this buyer", bookings.bookings.len());
    Ok(())
}
