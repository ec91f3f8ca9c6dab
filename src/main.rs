//! The `berth` binary: everything is in the library's `cli::main`.

fn main() -> std::process::ExitCode {
    berth::cli::main()
}
