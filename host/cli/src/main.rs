//! The `secret-broker` binary: a thin `main` over the subcommands in `cli/`.

mod cli;

/// mimalloc: a provider call allocates many small buffers (requests, answers,
/// canonical-ABI strings); with glibc's allocator that cost a tenth of a
/// loopback round trip through the http capability.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
