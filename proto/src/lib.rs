//! Generated protobuf messages and gRPC stubs for `turnstile.v1`, plus the encoded file descriptor
//! set that the gateway serves through gRPC reflection.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod codec;
pub mod json;

pub mod v1 {
    // Messages and client stubs.
    tonic::include_proto!("turnstile.v1");
    // Server stubs, generated apart so that they decode requests with `codec::RequestCodec`.
    include!(concat!(env!("OUT_DIR"), "/server/turnstile.v1.rs"));
}

/// Encoded `FileDescriptorSet` of every proto file, imports included, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/turnstile_descriptor.bin"));
