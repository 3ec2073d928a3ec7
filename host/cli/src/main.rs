//! The `secret-broker` binary: a thin `main` over the subcommands in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
