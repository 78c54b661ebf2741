//! Durable storage for Turnstile. The write-ahead command log lands here (see the durability issue).
