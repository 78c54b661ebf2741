//! Compiles `turnstile/v1/turnstile.proto` with protox, a protobuf compiler written in Rust, so no
//! system `protoc` is needed. The encoded descriptor set is kept for gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_file = "turnstile/v1/turnstile.proto";
    println!("cargo:rerun-if-changed={proto_file}");
    let descriptor_set = protox::compile([proto_file], ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("turnstile_descriptor.bin"), descriptor_set.encode_to_vec())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptor_set)?;
    Ok(())
}
