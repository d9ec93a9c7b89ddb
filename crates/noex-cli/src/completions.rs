//! `noex completions SHELL`: a completion script, with `noex serve`'s own flags and the
//! operation names as the values of `noex call OP`, `noex ops OP` and `noex bench OP`.

use clap::builder::PossibleValuesParser;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::client::call::op_names;
use crate::serve::ServeArgs;

/// Prints the script on stdout.
pub(crate) fn run(args: &CompletionsArgs) {
    let mut cmd = command();
    clap_complete::generate(args.shell, &mut cmd, "noex", &mut std::io::stdout());
}

/// The command line as the completion scripts describe it.
fn command() -> clap::Command {
    let names = op_names();
    // Only the completion script lists the names as possible values: the real parser takes
    // any name, so that an unknown one gets `noex call`'s own message.
    let with_names = |command: clap::Command| {
        command.mut_arg("op", |op| {
            op.value_parser(PossibleValuesParser::new(names.clone()))
                .hide_possible_values(true)
        })
    };
    // `noex serve` parses its arguments itself: the script completes its flags.
    Cli::command()
        .mut_subcommand("serve", |_| ServeArgs::command())
        .mut_subcommand("call", with_names)
        .mut_subcommand("ops", with_names)
        .mut_subcommand("bench", with_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_command_lines_are_consistent() {
        Cli::command().debug_assert();
        ServeArgs::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn the_script_completes_serve_flags_and_operation_names() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut command(),
            "noex",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("--max-connections-per-ip"));
        assert!(script.contains("--control-port"));
        assert!(script.contains("store.insert"));
    }
}
