//! The vouch command-line tool: runs a node and talks to one; verifies receipts offline.
//!
//! Exit codes: 0 success, 1 verification failed (`vouch verify`), 2 usage or any other error.

/// `println!` for what the user reads: never panics when stdout's reader has gone away (`vouch verify r.json |
/// head -1`); later output is dropped and the command still exits with its own status.
#[macro_export]
macro_rules! out {
    () => { $crate::write_out(format_args!("")) };
    ($($t:tt)*) => { $crate::write_out(format_args!($($t)*)) };
}

mod chat;
mod devnet;
mod infer;
mod ledger;
mod model;
mod node;
mod receipt;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Verifiable AI inference: host models, run them, and check every result.
#[derive(Parser)]
#[command(name = "vouch", version, about)]
pub struct Cli {
    /// Node to talk to.
    #[arg(long, global = true, env = "VOUCH_NODE", default_value = "http://127.0.0.1:7070")]
    pub node: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run or inspect a node.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Push, list, show and pull models.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Run a model and print its outputs (with --json: the receipt).
    Infer(infer::InferArgs),
    /// Chat with a GGUF language model (streams the answer, saves the receipt); interactive without a prompt.
    Chat(chat::ChatArgs),
    /// Continue a text with a GGUF language model (streams the answer, saves the receipt).
    Complete(chat::CompleteArgs),
    /// Verify a receipt offline: exit 0 valid, 1 invalid, 2 usage error.
    Verify(verify::VerifyArgs),
    /// Show stored receipts.
    #[command(subcommand)]
    Receipt(receipt::ReceiptCommand),
    /// Inspect the ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Inspect accounts.
    #[command(subcommand)]
    Account(ledger::AccountCommand),
    /// Sign and submit a ledger transaction from an account key.
    #[command(subcommand)]
    Tx(ledger::TxCommand),
    /// Run a local multi-node network (real processes on loopback) until SIGINT.
    Devnet(devnet::DevnetArgs),
}

/// What a command returns: success, or a verification failure (exit 1) already reported.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Invalid,
}

/// `$VOUCH_HOME` or `~/.vouch`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".vouch")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Node(c) => node::run(&cli, c).await,
            Command::Model(c) => model::run(&cli, c).await,
            Command::Infer(a) => infer::run(&cli, a).await,
            Command::Chat(a) => chat::chat(&cli, a).await,
            Command::Complete(a) => chat::complete(&cli, a).await,
            Command::Verify(a) => verify::run(&cli, a).await,
            Command::Receipt(c) => receipt::run(&cli, c).await,
            Command::Ledger(c) => ledger::run(&cli, c).await,
            Command::Account(c) => ledger::account(&cli, c).await,
            Command::Tx(c) => ledger::tx(&cli, c).await,
            Command::Devnet(a) => devnet::run(&cli, a).await,
        }
    });
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Set once stdout's reader has closed the pipe: nothing more is written.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line to stdout (see [`out!`]). A closed pipe stops further output quietly; any other write error is
/// reported once on stderr.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing to stdout: {e}");
        }
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
