//! Image references, normalized like docker: `alpine` is
//! `docker.io/library/alpine:latest`.

use std::fmt;
use std::str::FromStr;

/// The registry docker assumes.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of docker's official images.
const OFFICIAL_NAMESPACE: &str = "library";

/// A normalized image reference: `domain/path[:tag][@digest]`; a reference
/// without either gets the tag `latest`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// `docker.io/library/alpine`
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A string that is not a valid image reference.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct InvalidReference {
    input: String,
    reason: &'static str,
}

impl Reference {
    /// `docker.io/library/alpine`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest it pins, if any (`sha256:…`).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// This repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, InvalidReference> {
        format!("{}:{tag}", self.name).parse()
    }

    /// Whether `input` (a ref as written) names a tag or a digest, rather
    /// than a repository alone that gets `latest`.
    pub fn names_version(input: &str) -> bool {
        input.contains('@') || input.rsplit('/').next().is_some_and(|last| last.contains(':'))
    }

    /// The short form docker prints: `alpine:latest`, `user/app:1`,
    /// `quay.io/x/y:2`.
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        let short = full.strip_prefix("docker.io/").unwrap_or(&full);
        short.strip_prefix("library/").filter(|s| !s.contains('/')).unwrap_or(short).to_string()
    }
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(input: &str) -> Result<Reference, InvalidReference> {
        let bad = |reason| InvalidReference { input: input.to_string(), reason };
        if input.is_empty() || input.len() > 1024 {
            return Err(bad("empty or longer than 1024 characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                if digest.parse::<crate::digest::Digest>().is_err() {
                    return Err(bad("digest is not sha256:<64 hex digits>"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid {
                return Err(bad("tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"));
            }
        }
        let mut components: Vec<&str> = name.split('/').collect();
        let first = components[0];
        let has_domain = components.len() > 1
            && (first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()));
        let domain = if has_domain { components.remove(0) } else { DEFAULT_DOMAIN };
        if domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':')) {
            return Err(bad("invalid registry host"));
        }
        let domain = if domain == "index.docker.io" { DEFAULT_DOMAIN } else { domain };
        for c in &components {
            let valid = !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric();
            if !valid {
                return Err(bad("repository name must be lowercase [a-z0-9._-] components separated by /"));
            }
        }
        let mut path = components.join("/");
        if domain == DEFAULT_DOMAIN && components.len() == 1 {
            path = format!("{OFFICIAL_NAMESPACE}/{path}");
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference { name: format!("{domain}/{path}"), tag, digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("docker.io/library/alpine:1"), "docker.io/library/alpine:1");
        assert_eq!(norm("index.docker.io/library/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("quay.io/a/b:c"), "quay.io/a/b:c");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(norm(&format!("alpine@{d}")), format!("docker.io/library/alpine@{d}"));
    }

    #[test]
    fn familiar_form() {
        let f = |s: &str| s.parse::<Reference>().unwrap().familiar();
        assert_eq!(f("docker.io/library/alpine:latest"), "alpine:latest");
        assert_eq!(f("docker.io/user/app:1"), "user/app:1");
        assert_eq!(f("quay.io/a/b:c"), "quay.io/a/b:c");
    }

    #[test]
    fn tags_given_or_not() {
        assert!(!Reference::names_version("localhost:5000/app"));
        assert!(Reference::names_version("app:1") && Reference::names_version("app@sha256:00"));
        let base: Reference = "localhost:5000/app".parse().unwrap();
        assert_eq!(base.with_tag("1.0").unwrap().to_string(), "localhost:5000/app:1.0");
        assert!(base.with_tag("-x").is_err());
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "UPPER", "a:", "a:-x", "a@sha256:12", "a//b", "/a", "a b"] {
            assert!(s.parse::<Reference>().is_err(), "{s}");
        }
    }
}
