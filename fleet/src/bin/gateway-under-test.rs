//! `coldgate` itself, built in this package for the end-to-end tests.

fn main() -> std::process::ExitCode {
    coldgate::cli::main()
}
