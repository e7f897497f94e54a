//! `coldgate man` and `coldgate completions`: generated from the clap
//! definition itself, so they cannot drift from the binary. The Debian
//! package ships both (scripts/check-deb.sh generates them before packaging
//! and checks they are in the package).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use super::Cli;

/// Writes `coldgate.1` and one `coldgate-<command>.1` per subcommand.
pub fn man(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages to {}", dir.display()))?;
    Ok(())
}

/// The completion script for `shell`, on standard output.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "coldgate", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_man_page_is_written_for_every_command() {
        let dir = tempfile::tempdir().unwrap();
        man(dir.path()).unwrap();
        let main = std::fs::read_to_string(dir.path().join("coldgate.1")).unwrap();
        assert!(main.contains(".TH coldgate 1"), "{main}");
        for sub in Cli::command().get_subcommands() {
            let page = dir.path().join(format!("coldgate-{}.1", sub.get_name()));
            assert!(page.exists(), "{} missing", page.display());
        }
        let check = std::fs::read_to_string(dir.path().join("coldgate-check-config.1")).unwrap();
        assert!(check.contains("/etc/coldgate/coldgate.toml"), "{check}");
    }
}
