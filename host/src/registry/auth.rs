//! Credentials, where users already keep them.
//!
//! Reading, first hit wins: `--authfile FILE` (a containers `auth.json` or a
//! docker `config.json`), then `$REGISTRY_AUTH_FILE`, then docker's config
//! (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`) with its
//! `credHelpers` and `credsStore` (read with the `docker_credential` crate).
//!
//! `msb login` checks the credentials against the registry, then stores them
//! as `docker login` does: through the credential helper the config names for
//! the registry, else base64 in `auths` (file mode 0600); `msb logout` erases
//! them. `--authfile` makes both use that file instead.

use super::RegistryError;
use super::names::{credential_keys, login_key};
use base64::Engine;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most a credentials file may hold.
const MAX_CONFIG: u64 = 4 << 20;

/// What a registry is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    UsernamePassword(String, String),
    /// An identity token, exchanged for bearer tokens (`docker login` with
    /// some identity providers writes these).
    IdentityToken(String),
}

/// docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")),
    }
}

/// The credentials for `registry`, from the first source that has them.
/// `authfile` must exist when given; the other sources may be absent.
pub fn credential(registry: &str, authfile: Option<&Path>) -> Result<Option<Credential>, RegistryError> {
    if let Some(file) = authfile {
        if !file.is_file() {
            return Err(RegistryError::Credentials {
                source_name: format!("--authfile {}", file.display()),
                reason: "no such file".into(),
            });
        }
    }
    let from_env = std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from);
    let sources = authfile.map(Path::to_path_buf).into_iter().chain(from_env).chain(docker_config());
    for file in sources.filter(|f| f.is_file()) {
        if let Some(credential) = from_file(&file, registry)? {
            return Ok(Some(credential));
        }
    }
    Ok(None)
}

/// `registry`'s credentials in one config file (or its helpers), if any.
fn from_file(file: &Path, registry: &str) -> Result<Option<Credential>, RegistryError> {
    let bad = |reason: String| RegistryError::Credentials { source_name: file.display().to_string(), reason };
    let bytes = read_config(file)?;
    for key in credential_keys(registry) {
        match docker_credential::get_credential_from_reader(&bytes[..], &key) {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                return Ok(Some(Credential::UsernamePassword(user, password)));
            }
            Ok(DockerCredential::IdentityToken(token)) => return Ok(Some(Credential::IdentityToken(token))),
            Err(CredentialRetrievalError::NoCredentialConfigured) => {}
            // A helper that has nothing for this registry says so by failing.
            Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. })
                if format!("{stdout}{stderr}").contains("credentials not found") => {}
            Err(e) => return Err(bad(format!("credentials for {key}: {e}"))),
        }
    }
    Ok(None)
}

fn read_config(file: &Path) -> Result<Vec<u8>, RegistryError> {
    use std::io::Read;
    let bad = |reason: String| RegistryError::Credentials { source_name: file.display().to_string(), reason };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_CONFIG + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(bad(format!("larger than {MAX_CONFIG} bytes")));
    }
    Ok(bytes)
}

/// Where `msb login`/`logout` keep credentials.
pub fn login_file(authfile: Option<&Path>) -> Result<PathBuf, RegistryError> {
    authfile.map(Path::to_path_buf).or_else(docker_config).ok_or_else(|| RegistryError::Credentials {
        source_name: "docker config".into(),
        reason: "neither --authfile, DOCKER_CONFIG nor HOME is set".into(),
    })
}

/// Stores `user`'s `password` for `registry` in `file` (or the helper it names).
/// Returns where they went.
pub fn store(file: &Path, registry: &str, user: &str, password: &str) -> Result<String, RegistryError> {
    let mut config = read_object(file)?;
    let key = login_key(registry);
    if let Some(helper) = helper_for(&config, &key) {
        let input = json!({ "ServerURL": key, "Username": user, "Secret": password }).to_string();
        run_helper(&helper, "store", &input)?;
        return Ok(format!("docker-credential-{helper}"));
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let auths = config.entry("auths").or_insert_with(|| json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err(RegistryError::Credentials {
            source_name: file.display().to_string(),
            reason: "\"auths\" is not an object".into(),
        });
    };
    auths.insert(key, json!({ "auth": auth }));
    write_object(file, &config)?;
    Ok(file.display().to_string())
}

/// Removes the credentials for `registry` from `file` (or its helper).
/// `Ok(false)`: there were none.
pub fn erase(file: &Path, registry: &str) -> Result<bool, RegistryError> {
    if !file.exists() {
        return Ok(false);
    }
    let mut config = read_object(file)?;
    let mut removed = false;
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        for key in credential_keys(registry) {
            removed |= auths.remove(&key).is_some();
        }
    }
    if removed {
        write_object(file, &config)?;
    }
    let key = login_key(registry);
    if let Some(helper) = helper_for(&config, &key) {
        // The helper says whether it had them by succeeding.
        removed |= run_helper(&helper, "erase", &key).is_ok();
    }
    Ok(removed)
}

/// The helper the config names for `key` (`credHelpers`, else `credsStore`).
fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
    let host = key.trim_start_matches("https://").trim_start_matches("http://").split('/').next().unwrap_or(key);
    let helpers = config.get("credHelpers").and_then(Value::as_object);
    let named = helpers.and_then(|h| h.get(key).or_else(|| h.get(host))).and_then(Value::as_str);
    named.or_else(|| config.get("credsStore").and_then(Value::as_str)).filter(|h| !h.is_empty()).map(str::to_string)
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin.
fn run_helper(helper: &str, verb: &str, input: &str) -> Result<(), RegistryError> {
    let name = format!("docker-credential-{helper}");
    let bad = |reason: String| RegistryError::Credentials { source_name: name.clone(), reason };
    let mut child = Command::new(&name)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(e.to_string()))?;
    child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(input.as_bytes()))
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    let output = child.wait_with_output().map_err(|e| bad(e.to_string()))?;
    if !output.status.success() {
        let said =
            String::from_utf8_lossy(&output.stdout).trim().to_string() + String::from_utf8_lossy(&output.stderr).trim();
        return Err(bad(format!("{verb} failed: {said}")));
    }
    Ok(())
}

fn read_object(file: &Path) -> Result<Map<String, Value>, RegistryError> {
    if !file.exists() {
        return Ok(Map::new());
    }
    let bytes = read_config(file)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Credentials {
        source_name: file.display().to_string(),
        reason: format!("not a JSON object: {e}"),
    })
}

/// Writes `config` to `file` (mode 0600) through a temporary file and a rename.
fn write_object(file: &Path, config: &Map<String, Value>) -> Result<(), RegistryError> {
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |e: std::io::Error| RegistryError::Credentials {
        source_name: file.display().to_string(),
        reason: e.to_string(),
    };
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(bad)?;
    let tmp = dir.join(format!(".{}.msb-tmp", file.file_name().and_then(|n| n.to_str()).unwrap_or("config.json")));
    let mut bytes = serde_json::to_vec_pretty(config).expect("a JSON object serializes");
    bytes.push(b'\n');
    let mut out =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(bad)?;
    out.write_all(&bytes).and_then(|()| out.sync_all()).map_err(bad)?;
    std::fs::rename(&tmp, file).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_writes_what_docker_and_msb_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"auths":{"other.io":{"auth":"eDp5"}},"psFormat":"x"}"#).unwrap();
        store(&file, "127.0.0.1:5000", "user", "pa:ss").unwrap();
        let cred = credential("127.0.0.1:5000", Some(&file)).unwrap();
        assert_eq!(cred, Some(Credential::UsernamePassword("user".into(), "pa:ss".into())));
        let config: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(config["psFormat"], "x", "other settings are kept");
        assert_eq!(config["auths"]["127.0.0.1:5000"]["auth"], "dXNlcjpwYTpzcw==");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(erase(&file, "127.0.0.1:5000").unwrap());
        assert!(!erase(&file, "127.0.0.1:5000").unwrap());
        assert_eq!(credential("127.0.0.1:5000", Some(&file)).unwrap(), None);
        assert_eq!(
            credential("other.io", Some(&file)).unwrap(),
            Some(Credential::UsernamePassword("x".into(), "y".into()))
        );
    }

    #[test]
    fn docker_hub_is_found_under_its_legacy_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#).unwrap();
        assert_eq!(
            credential("docker.io", Some(&file)).unwrap(),
            Some(Credential::UsernamePassword("u".into(), "p".into()))
        );
        assert!(credential("docker.io", Some(&dir.path().join("missing"))).is_err(), "an --authfile that is not there");
    }
}
