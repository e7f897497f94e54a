fn main() -> std::process::ExitCode {
    coldgate_fleet::cli::main()
}
