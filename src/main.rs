use clap::Parser as _;

fn main() -> std::process::ExitCode {
    match hookgate::cli::run(hookgate::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
