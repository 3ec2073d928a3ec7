//! The `secret-broker` binary: a thin `main` over the subcommands in `cli/`.

mod cli;

/// mimalloc: a provider call allocates many small buffers (requests, answers,
/// canonical-ABI strings); with glibc's allocator a get through the http
/// capability from an instant loopback backend took about 6 µs more
/// (`benches/openbao.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
