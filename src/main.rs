//! The `appliance` binary: parse the command line and hand over to the library.
//! Nothing else lives here; see `appliance::cli`.

fn main() -> std::process::ExitCode {
    appliance::cli::main()
}
