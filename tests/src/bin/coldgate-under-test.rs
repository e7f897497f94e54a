//! The gateway's own entry point, built inside this package so its tests run
//! exactly what `cargo test` just compiled.

fn main() -> std::process::ExitCode {
    coldgate::cli::main()
}
