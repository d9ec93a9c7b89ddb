//! `noex completions SHELL`: a completion script, with the operation names as the values
//! of `noex call OP`, `noex ops OP` and `noex bench OP`.

use clap::builder::PossibleValuesParser;
use clap::CommandFactory;

use crate::args::Cli;
use crate::call::op_names;
use crate::client_args::CompletionsArgs;
use crate::exit::Failure;

/// Prints the script on stdout.
pub(crate) fn run(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut cmd = command();
    clap_complete::generate(args.shell, &mut cmd, "noex", &mut std::io::stdout());
    Ok(())
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
    Cli::command()
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
        command().debug_assert();
    }
}
