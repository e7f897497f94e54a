use clap::CommandFactory;

use super::Cli;

/// Every subcommand and every argument of `command`, with its path.
fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        // clap's own --help and --version carry their help.
        if id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            missing.push(format!("{path} {id}"));
        }
    }
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            missing.push(sub_path.clone());
        }
        walk(sub, &sub_path, missing);
    }
}

#[test]
fn every_command_and_option_has_help() {
    let mut missing = Vec::new();
    walk(&Cli::command(), "coldgate", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:#?}");
}

#[test]
fn the_command_line_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// Every `--config` of every command, with the command's path.
fn config_args(command: &clap::Command, path: &str, out: &mut Vec<(String, Vec<String>)>) {
    for arg in command.get_arguments() {
        if arg.get_id() == "config" {
            let defaults = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            out.push((path.to_string(), defaults));
        }
    }
    for sub in command.get_subcommands() {
        config_args(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_config_option_defaults_to_the_installed_file() {
    let mut found = Vec::new();
    config_args(&Cli::command(), "coldgate", &mut found);
    let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    for needed in [
        "coldgate run",
        "coldgate check-config",
        "coldgate report",
        "coldgate status",
    ] {
        assert!(
            names.contains(&needed),
            "{needed} has no --config: {names:?}"
        );
    }
    for (path, defaults) in &found {
        assert_eq!(defaults, &[super::DEFAULT_CONFIG], "{path}");
    }
}
