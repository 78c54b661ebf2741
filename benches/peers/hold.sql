-- Script A, the hold: one conditional UPDATE (autocommit, so one durable commit per hold).
-- :seats comes from pgbench -D seats=N. A seat that is already held (and not expired) is left
-- alone; the row count after the run tells how many holds took.
\set seat random(1, :seats)
\set buyer random(1, 1000000)
UPDATE seats
   SET status = 'held', hold_owner = 'buyer-' || :buyer, hold_expires = now() + interval '10 minutes'
 WHERE event_id = 1 AND seat_id = :seat
   AND (status = 'available' OR (status = 'held' AND hold_expires < now()));
