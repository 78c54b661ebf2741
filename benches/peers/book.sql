-- Script B, the booking transaction of the seed notes, on one event: lock the seat row, check it
-- is not booked, mark it booked, insert the booking, commit (one durable commit per booking).
\set seat random(1, :seats)
\set buyer random(1, 1000000)
BEGIN;
SELECT (status <> 'booked')::int AS bookable
  FROM seats WHERE event_id = 1 AND seat_id = :seat FOR UPDATE \gset
\if :bookable
UPDATE seats SET status = 'booked', hold_owner = 'buyer-' || :buyer, hold_expires = NULL
 WHERE event_id = 1 AND seat_id = :seat;
INSERT INTO bookings (event_id, seat_id, buyer) VALUES (1, :seat, 'buyer-' || :buyer);
\endif
COMMIT;
