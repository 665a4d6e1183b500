//! Where a reference lives: registry host, repository path, and the names
//! under which credentials for the registry are kept.

use crate::reference::Reference;
use std::fmt;

/// The registry docker's short names mean, and the host serving its API.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key docker keeps Docker Hub's credentials under.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A repository of a registry: `127.0.0.1:5000` + `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repository {
    /// The registry as references name it (`docker.io`, `host:port`).
    pub registry: String,
    /// The repository path (`library/alpine`).
    pub path: String,
}

impl Repository {
    /// The repository `reference` names.
    pub fn of(reference: &Reference) -> Repository {
        let (registry, path) = reference.name().split_once('/').expect("a normalized name has a domain");
        Repository { registry: registry.to_string(), path: path.to_string() }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// The host (and port) serving `registry`'s API.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB { DOCKER_HUB_API } else { registry }
}

/// The keys credentials for `registry` may be kept under, in the order
/// docker and podman look them up.
pub fn credential_keys(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        vec![DOCKER_HUB_AUTH_KEY.into(), DOCKER_HUB.into(), "index.docker.io".into(), DOCKER_HUB_API.into()]
    } else {
        vec![registry.into(), format!("https://{registry}"), format!("http://{registry}")]
    }
}

/// The key `msb login` writes credentials for `registry` under.
pub fn login_key(registry: &str) -> String {
    if registry == DOCKER_HUB { DOCKER_HUB_AUTH_KEY.into() } else { registry.into() }
}

/// Whether `registry` is this machine (docker lets these speak plain HTTP).
pub fn is_local(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_keys() {
        let r = Repository::of(&"alpine".parse().unwrap());
        assert_eq!((r.registry.as_str(), r.path.as_str()), ("docker.io", "library/alpine"));
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(credential_keys("docker.io")[0], "https://index.docker.io/v1/");
        let r = Repository::of(&"127.0.0.1:5000/a/b:1".parse().unwrap());
        assert_eq!(r.to_string(), "127.0.0.1:5000/a/b");
        assert!(is_local("127.0.0.1:5000") && is_local("localhost") && !is_local("quay.io"));
    }
}
