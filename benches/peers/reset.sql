-- Between pgbench runs: every seat available again, no bookings, dead rows vacuumed, and a
-- checkpoint so the next run does not pay for the previous one's dirty pages.
UPDATE seats SET status = 'available', hold_owner = NULL, hold_expires = NULL WHERE status <> 'available';
TRUNCATE bookings RESTART IDENTITY;
VACUUM (ANALYZE) seats;
VACUUM (ANALYZE) bookings;
CHECKPOINT;
