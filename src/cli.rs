//! The command line: `run`, `check`, `test`, `scan`, `explain`, `ca init`, `pac`.
//! Exit codes: 0 success, 1 a test failed (or findings, for `scan`), 2 an error.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::rules_cli;

#[derive(Parser, Debug)]
#[command(
    name = "permeable",
    version,
    about = "Gateway for the permeable firewall: inspects and governs what employees send to social sites"
)]
pub struct Cli {
    /// Log format for operational logs (`RUST_LOG` filters them).
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default when no command is given).
    Run(RunArgs),
    /// Validate a rule directory: exit 0, or 2 with located errors.
    Check {
        /// Rules directory (default: ./rules).
        dir: Option<PathBuf>,
    },
    /// Run the rule tests under DIR/tests: exit 0 when all pass, 1 otherwise.
    Test {
        /// Rules directory (default: ./rules).
        dir: Option<PathBuf>,
    },
    /// Run the detectors over a body and print the findings.
    Scan(rules_cli::ScanArgs),
    /// Show the full decision trace for one request.
    Explain(rules_cli::ExplainArgs),
    /// Manage the interception CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Print a proxy auto-config (PAC) file generated from the site catalogue.
    Pac(PacArgs),
}

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// Configuration file (YAML). Without it, built-in defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Take over the listening sockets of a running instance (zero-downtime upgrade).
    #[arg(long)]
    pub upgrade: bool,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a new CA: writes ca.crt and ca.key (mode 0600) into DIR.
    Init {
        #[arg(long)]
        out: PathBuf,
        /// Common name of the CA certificate.
        #[arg(long, default_value = "permeable interception CA")]
        name: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct PacArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The proxy address browsers should use (default: the first proxy.listen).
    #[arg(long)]
    pub proxy: Option<String>,
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, i32> {
    match path {
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("{e}");
            2
        }),
        None => Ok(Config::default()),
    }
}

/// Run the command line; returns the process exit code.
pub fn main_with(cli: Cli) -> i32 {
    match cli.command {
        None => {
            init_logging(&cli.log_format);
            run(RunArgs::default())
        }
        Some(Command::Run(args)) => {
            init_logging(&cli.log_format);
            run(args)
        }
        Some(Command::Check { dir }) => {
            rules_cli::run_check(&dir.unwrap_or_else(|| PathBuf::from("rules")))
        }
        Some(Command::Test { dir }) => {
            rules_cli::run_test(&dir.unwrap_or_else(|| PathBuf::from("rules")))
        }
        Some(Command::Scan(args)) => rules_cli::run_scan(&args),
        Some(Command::Explain(args)) => rules_cli::run_explain(&args),
        Some(Command::Ca {
            command: CaCommand::Init { out, name },
        }) => match crate::tls::CertificateAuthority::generate(&name).and_then(|ca| ca.write(&out))
        {
            Ok((cert, key)) => {
                println!("wrote {} and {} (mode 0600)", cert.display(), key.display());
                0
            }
            Err(e) => {
                eprintln!("permeable: {e}");
                2
            }
        },
        Some(Command::Pac(args)) => {
            let config = match load_config(args.config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let dir = args
                .config
                .as_ref()
                .and_then(|p| p.parent().map(|d| d.to_path_buf()));
            let source = crate::server::rules_source(&config, dir.as_deref());
            let opts = match crate::server::engine_options(&config) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("permeable: {e}");
                    return 2;
                }
            };
            let policy = match source.load(&opts) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return 2;
                }
            };
            let proxy = args.proxy.unwrap_or_else(|| {
                config
                    .proxy
                    .listen
                    .first()
                    .map_or("127.0.0.1:8080".into(), |a| a.to_string())
            });
            print!("{}", crate::pac::generate(&policy, &proxy));
            0
        }
    }
}

fn run(args: RunArgs) -> i32 {
    let config = match load_config(args.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let config_dir = args
        .config
        .as_ref()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    let listen = config.proxy.listen.clone();
    let prepared = match crate::server::prepare(config, config_dir.as_deref(), args.upgrade) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("permeable: {e}");
            return 2;
        }
    };
    if let Some(cert) = &prepared.created_ca {
        eprintln!(
            "permeable: created an interception CA at {cert}\n  Trust it in the clients that use this gateway, e.g.\n    curl --cacert {cert} -x http://{proxy} https://x.com/\n    Debian/Ubuntu: cp {cert} /usr/local/share/ca-certificates/permeable.crt && update-ca-certificates\n    Browsers: import it as an authority (Settings → Certificates).",
            cert = cert.display(),
            proxy = listen.first().map_or("127.0.0.1:8080".into(), |a| a.to_string()),
        );
    }
    eprintln!(
        "permeable: proxy on {}, admin on http://{} (/healthz /readyz /metrics), rules from {}",
        listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        prepared.admin_addr,
        prepared.rules_source.describe()
    );
    prepared.run(pingora::server::RunArgs::default());
    0
}
