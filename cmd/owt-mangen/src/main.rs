//! `owt-mangen DIR`: writes owtctl.1 (with a page per subcommand) and owt-<daemon>.8 from
//! the clap definitions, so `--help` and the man pages never disagree. Used by `make man`;
//! not installed.

use clap::CommandFactory;
use std::path::{Path, PathBuf};

fn write(dir: &Path, command: clap::Command, section: &str) -> std::io::Result<()> {
    let name = command.get_name().to_string();
    let man = clap_mangen::Man::new(command.clone()).section(section).source("owt-rs").manual("owt-rs");
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.{section}")), page)?;
    if section == "1" {
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let full = format!("{name}-{}", sub.get_name());
            let sub = sub.clone().name(full.clone()).bin_name(full);
            write(dir, sub, section)?;
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "man".into()));
    std::fs::create_dir_all(&dir)?;
    write(&dir, owtctl::Cli::command(), "1")?;
    write(&dir, owt_portal::Cli::command(), "8")?;
    write(&dir, owt_webrtc::Cli::command(), "8")?;
    write(&dir, owt_mixer::Cli::command(), "8")?;
    write(&dir, owt_record::Cli::command(), "8")?;
    write(&dir, owt_stream::Cli::command(), "8")?;
    write(&dir, owt_sip::Cli::command(), "8")?;
    write(&dir, owt_peer::Cli::command(), "8")?;
    Ok(())
}
