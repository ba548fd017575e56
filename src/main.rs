//! The `appliance` binary: parse the command line and hand over to the library.
//! Nothing else lives here; see `appliance::cli`.

/// mimalloc returns freed memory to the OS; with glibc's malloc the per-thread arenas of
/// tantivy's indexing threads and tokio's blocking pool kept hundreds of MiB of freed
/// heap resident after a bulk load (measured with `cargo bench --bench articles`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    appliance::cli::main()
}
