use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    owtctl::main(owtctl::Cli::parse())
}
