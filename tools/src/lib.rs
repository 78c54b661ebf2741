//! What ships beside the Turnstile server, outside it: the load generator behind `turnstile
//! bench` ([`loadgen`], a client of the API through `turnstile-client`) and the demo data set
//! behind `turnstile serve --demo` ([`demo`], made through the engine's own calls).

pub mod demo;
pub mod loadgen;
