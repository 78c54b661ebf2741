//! Compiles `turnstile/v1/turnstile.proto` with protox, a protobuf compiler written in Rust, so no
//! system `protoc` is needed. The encoded descriptor set is kept for gRPC server reflection.
//!
//! Two passes: the messages and client stubs with tonic-prost's codec, then the server stubs alone
//! (the messages taken from the first pass) with `codec::RequestCodec`, which answers a request
//! that does not decode INVALID_ARGUMENT. One codec path serves both sides in tonic-prost-build,
//! and a response that does not decode is not the caller's fault, so the clients keep INTERNAL.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_file = "turnstile/v1/turnstile.proto";
    println!("cargo:rerun-if-changed={proto_file}");
    let descriptor_set = protox::compile([proto_file], ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("turnstile_descriptor.bin"), descriptor_set.encode_to_vec())?;
    tonic_prost_build::configure().build_server(false).build_client(true).compile_fds(descriptor_set.clone())?;
    let server_dir = out_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .out_dir(&server_dir)
        .extern_path(".turnstile.v1", "crate::v1")
        .codec_path("crate::codec::RequestCodec")
        .compile_fds(descriptor_set)?;
    Ok(())
}
