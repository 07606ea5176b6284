//! Compiles proto/dnsmessage.proto with prost-build, using protox (a protobuf compiler written in
//! Rust) so that building needs nothing but cargo: no protoc on the machine.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/dnsmessage.proto");
    let descriptors = protox::compile(["proto/dnsmessage.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
