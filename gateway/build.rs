//! Link settings of the `turnstile` binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The release binary keeps line tables (file and line in backtraces and profiles) but has the
    // linker compress its debug sections: 185 MB uncompressed, 73 MB compressed (`cargo build
    // --release -p turnstile && ls -l target/release/turnstile`, 2026-12-06). Backtraces,
    // gdb, addr2line and perf read compressed sections. GNU ld and lld on Linux take the flag.
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux && std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
