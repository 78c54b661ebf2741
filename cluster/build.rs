//! Compiles the replication service's protobuf file with protox (no system `protoc`), like the
//! API crate does.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_file = "turnstile/raft/v1/raft.proto";
    println!("cargo:rerun-if-changed=proto/{proto_file}");
    let descriptor_set = protox::compile([proto_file], ["proto"])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptor_set)?;
    Ok(())
}
