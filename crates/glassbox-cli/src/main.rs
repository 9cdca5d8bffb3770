fn main() -> std::process::ExitCode {
    glassbox_cli::main()
}
