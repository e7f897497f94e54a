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
