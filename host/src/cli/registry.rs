//! `msb pull`, `msb push`, `msb login`, `msb logout`.

use super::load::max_layer_bytes;
use super::{Format, open_store, runtime};
use anyhow::{Context, Result, bail};
use msb::input::Source;
use msb::oci;
use msb::reference::Reference;
use msb::registry::push::{ArchivePush, Destination, Pushed};
use msb::registry::{RegistryOptions, auth, client::Upload, pull, push};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// How to reach the registry: credentials and TLS.
#[derive(clap::Args)]
pub struct Connection {
    /// Credentials file (a containers auth.json or docker config.json), read
    /// before $REGISTRY_AUTH_FILE and docker's config; login/logout write it.
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Directory with the registry's CA certificate(s) (`*.crt`, e.g.
    /// ca.crt) and optionally a client certificate (`*.cert` + `*.key`).
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// `--tls-verify=false` allows plain HTTP and untrusted certificates
    /// (localhost may use plain HTTP anyway, as with docker).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
}

impl Connection {
    fn options(&self) -> RegistryOptions {
        RegistryOptions {
            authfile: self.authfile.clone(),
            cert_dir: self.cert_dir.clone(),
            tls_verify: self.tls_verify,
        }
    }
}

/// `msb pull` arguments.
#[derive(clap::Args)]
pub struct PullArgs {
    /// The image: `NAME[:TAG]` or `NAME@sha256:…`.
    reference: Reference,
    /// From a multi-platform index, pull this platform (os/arch[/variant])
    /// instead of the host's.
    #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Pull every platform of a multi-platform index.
    #[arg(long)]
    all_platforms: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// `json` prints the pulled images to stdout.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    connection: Connection,
}

/// `msb push` arguments.
#[derive(clap::Args)]
pub struct PushArgs {
    /// `REF [DEST]`: a stored image and where to push it (default: REF).
    /// With `-i`: `DEST` only.
    #[arg(value_name = "REF", num_args = 0..=2)]
    names: Vec<String>,
    /// Push straight from this archive (any format `msb load` reads),
    /// without loading it.
    #[arg(short, long, value_name = "ARCHIVE")]
    input: Option<PathBuf>,
    /// With -i: push every image of the archive to HOST[:PORT][/PREFIX],
    /// each under its own repository path.
    #[arg(long, value_name = "HOST[/PREFIX]", requires = "input")]
    to_registry: Option<String>,
    /// With -i: from a multi-platform index, this platform instead of the host's.
    #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms", requires = "input")]
    platform: Option<String>,
    /// With -i: every platform of a multi-platform index, with the index.
    #[arg(long, requires = "input")]
    all_platforms: bool,
    /// With -i: the decoder to use instead of detecting one.
    #[arg(long, value_name = "NAME|PATH", requires = "input")]
    plugin: Option<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// `json` prints what was pushed to stdout.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    connection: Connection,
}

/// `msb login` arguments.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// The registry: `HOST[:PORT]` (`docker.io` for Docker Hub).
    registry: String,
    /// User name (asked for on a terminal when not given).
    #[arg(short, long)]
    username: Option<String>,
    /// Password or token (visible to other users: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    connection: Connection,
}

/// `msb logout` arguments.
#[derive(clap::Args)]
pub struct LogoutArgs {
    /// The registry: `HOST[:PORT]`.
    registry: String,
    /// Credentials file to remove them from, instead of docker's config.
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

fn platform(arg: &Option<String>) -> Result<Option<oci::Platform>> {
    arg.as_ref()
        .map(|p| oci::parse_platform(p).with_context(|| format!("--platform {p:?}: expected os/arch[/variant]")))
        .transpose()
}

pub fn pull_cmd(home: &Path, args: PullArgs) -> Result<()> {
    let store = open_store(home)?;
    let options = pull::PullOptions {
        reference: args.reference.clone(),
        platform: platform(&args.platform)?,
        all_platforms: args.all_platforms,
        registry: args.connection.options(),
        max_layer_bytes: max_layer_bytes()?,
    };
    let progress = super::progress::for_terminal(args.quiet);
    let pulled = pull::pull(&store, &options, progress.as_ref())
        .with_context(|| format!("pull {}", args.reference.familiar()))?;
    if args.format == Format::Json {
        let images: Vec<_> = pulled.iter().map(|image| super::load::image_json(&store, image)).collect();
        println!("{}", serde_json::to_string_pretty(&images)?);
    }
    if !args.quiet {
        for image in &pulled {
            eprintln!("✓ Pulled {} ({}, {})", args.reference.familiar(), image.platform, image.manifest_digest);
        }
    }
    Ok(())
}

pub fn push_cmd(home: &Path, args: PushArgs) -> Result<()> {
    let store = open_store(home)?;
    let options = args.connection.options();
    let progress = super::progress::for_terminal(args.quiet);
    let pushed = match &args.input {
        None => {
            let (name, dest) = match args.names.as_slice() {
                [name] => (name, name),
                [name, dest] => (name, dest),
                _ => bail!("push needs the image to push: msb push REF [DEST], or msb push -i ARCHIVE DEST"),
            };
            let dest: Reference = dest.parse()?;
            let pushed = push::push_stored(&store, name, &dest, &options, progress.as_ref())
                .with_context(|| format!("push {name} to {}", dest.familiar()))?;
            vec![pushed]
        }
        Some(path) => {
            let destination = match (&args.to_registry, args.names.as_slice()) {
                (Some(target), []) => {
                    let (registry, prefix) = target.trim_end_matches('/').split_once('/').unwrap_or((target, ""));
                    Destination::Registry { registry: registry.to_string(), prefix: prefix.to_string() }
                }
                (None, [dest]) => Destination::Image(dest.parse()?),
                _ => bail!("push -i ARCHIVE needs one DEST, or --to-registry HOST[:PORT][/PREFIX]"),
            };
            let source = if path == Path::new("-") { Source::Stdin } else { Source::Path(path.clone()) };
            let request = ArchivePush {
                source: source.clone(),
                plugin: args.plugin.clone(),
                platform: platform(&args.platform)?,
                all_platforms: args.all_platforms,
                destination,
                max_layer_bytes: max_layer_bytes()?,
            };
            let runtime = runtime()?;
            runtime.show_notes(!args.quiet);
            push::push_archive(&store, &runtime, &request, &options, progress.as_ref())
                .with_context(|| source.display_name())?
        }
    };
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&pushed.iter().map(pushed_json).collect::<Vec<_>>())?);
    }
    if !args.quiet {
        for image in &pushed {
            eprintln!("✓ Pushed {} ({}, {} bytes)", image.reference.familiar(), image.digest, image.size);
        }
    }
    Ok(())
}

fn pushed_json(pushed: &Pushed) -> serde_json::Value {
    json!({
        "ref": pushed.reference.to_string(),
        "digest": pushed.digest,
        "media_type": pushed.media_type,
        "size": pushed.size,
        "blobs": pushed.blobs.iter().map(|b| json!({
            "digest": b.digest,
            "size": b.size,
            "media_type": b.media_type,
            "status": match b.how { Upload::Exists => "exists", Upload::Mounted(_) => "mounted", Upload::Uploaded => "uploaded" },
            "uncompressed": b.uncompressed,
        })).collect::<Vec<_>>(),
    })
}

pub fn login(args: LoginArgs) -> Result<()> {
    let registry = registry_name(&args.registry)?;
    let username = match args.username {
        Some(user) => user,
        None if std::io::stdin().is_terminal() => prompt("Username: ", true)?,
        None => bail!("login {registry}: no user name (-u USER)"),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(password), _) => password,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => prompt("Password: ", false)?,
        (None, false) => bail!("login {registry}: no password (--password-stdin, or -p)"),
    };
    if password.is_empty() {
        bail!("login {registry}: the password is empty");
    }
    let options = args.connection.options();
    let credential = auth::Credential::UsernamePassword(username.clone(), password.clone());
    let client = msb::registry::Client::with_credential(&registry, &options, Some(credential))?;
    client.check_login().with_context(|| format!("login {registry}"))?;
    let file = auth::login_file(options.authfile.as_deref())?;
    let kept = auth::store(&file, &registry, &username, &password).with_context(|| format!("login {registry}"))?;
    eprintln!("Login Succeeded (credentials kept in {kept})");
    Ok(())
}

pub fn logout(args: LogoutArgs) -> Result<()> {
    let registry = registry_name(&args.registry)?;
    let file = auth::login_file(args.authfile.as_deref())?;
    if auth::erase(&file, &registry).with_context(|| format!("logout {registry}"))? {
        eprintln!("Removed login credentials for {registry}");
    } else {
        eprintln!("Not logged in to {registry}");
    }
    Ok(())
}

/// `HOST[:PORT]` as references name it (`index.docker.io` is `docker.io`).
fn registry_name(input: &str) -> Result<String> {
    let host = input.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let host = host.strip_suffix("/v1").or_else(|| host.strip_suffix("/v2")).unwrap_or(host);
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':')) {
        bail!("{input:?} is not a registry host (HOST[:PORT])");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        host => host.to_string(),
    })
}

/// Asks on the terminal; the password without echo.
fn prompt(label: &str, echo: bool) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let stdin = std::io::stdin();
    let saved = if echo { None } else { tcgetattr(&stdin).ok() };
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).ok();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = &saved {
        tcsetattr(&stdin, OptionalActions::Now, saved).ok();
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
