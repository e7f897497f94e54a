fn main() -> std::process::ExitCode {
    coldgate::cli::main()
}
