-- PostgreSQL side of benches/peers.sh: one event's seats and the bookings table, as in the seed
-- notes' booking transaction. :seats is set by psql -v seats=N.
SET client_min_messages = warning;
DROP TABLE IF EXISTS bookings;
DROP TABLE IF EXISTS seats;
-- fillfactor 85 leaves room on each page so the status updates below can be HOT updates (no index
-- write): a tuning choice in PostgreSQL's favour.
CREATE TABLE seats (
    event_id     int         NOT NULL,
    seat_id      int         NOT NULL,
    status       text        NOT NULL DEFAULT 'available',
    hold_owner   text,
    hold_expires timestamptz,
    PRIMARY KEY (event_id, seat_id)
) WITH (fillfactor = 85);
CREATE TABLE bookings (
    id         bigserial   PRIMARY KEY,
    event_id   int         NOT NULL,
    seat_id    int         NOT NULL,
    buyer      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO seats (event_id, seat_id, status)
SELECT 1, g, 'available' FROM generate_series(1, :seats) AS g;
VACUUM (ANALYZE) seats;
VACUUM (ANALYZE) bookings;
CHECKPOINT;
