//! The `permeable` binary: parses the command line and hands over to [`permeable::cli`].

use clap::Parser;

fn main() {
    let cli = permeable::cli::Cli::parse();
    std::process::exit(permeable::cli::main_with(cli));
}
