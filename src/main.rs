use clap::Parser as _;

fn main() -> std::process::ExitCode {
    match hookgate::cli::run(hookgate::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e.downcast_ref::<hookgate::cli::CliError>().map_or(1, |c| c.exit as u8);
            std::process::ExitCode::from(code)
        }
    }
}
