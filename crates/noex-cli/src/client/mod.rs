//! The client commands (`noex call`, `noex get`, ..., `noex watch`, `noex bench`): each
//! connects to a server with the connection flags and talks to it through the public SDK
//! (`noex-tokio`), and fails with a [`Failure`].

pub(crate) mod args;
mod bench;
pub(crate) mod call;
mod connect;
mod failure;
mod input;
mod output;
mod shortcuts;
mod watch;

pub(crate) use self::args::Command;
pub(crate) use self::failure::Failure;

/// Run a client command.
pub(crate) fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Call(a) => call::run(&a),
        Command::Ops(a) => call::list(&a),
        Command::Get(a) => shortcuts::get(&a),
        Command::Insert(a) => shortcuts::insert(&a),
        Command::Query(a) => shortcuts::query(&a),
        Command::Emit(a) => shortcuts::emit(&a),
        Command::Fact(a) => shortcuts::fact(&a),
        Command::Stats(a) => shortcuts::stats(&a),
        Command::Whoami(a) => shortcuts::whoami(&a),
        Command::Watch(a) => watch::run(&a),
        Command::Bench(a) => bench::run(&a),
    }
}
