//! One registry's HTTP client (reqwest, rustls): the distribution API's
//! requests, with what makes them work against real registries:
//!
//! - **Scheme.** HTTPS; plain HTTP too for localhost and `--tls-verify=false`
//!   (tried after HTTPS, as docker does for insecure registries).
//! - **Auth.** The first request pings `/v2/`; a `Basic` challenge gets the
//!   user's credentials, a `Bearer` one a token from the realm (anonymous
//!   when there are no credentials), one per scope, asked for again on a 401.
//! - **Retries.** 429, 5xx and dropped connections are retried with
//!   exponential backoff (or the `Retry-After` the registry gives); blob
//!   downloads resume where they broke off (`Range`).

use super::auth::Credential;
use super::names::{api_host, is_local};
use super::{RegistryError, RegistryOptions};
use crate::digest::Digest;
use base64::Engine;
use reqwest::blocking::{Body, RequestBuilder, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

/// The manifest media types msb asks for, most wanted first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
/// How often a request is tried before its failure is reported.
const ATTEMPTS: u32 = 5;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a blob download resumes after a broken connection.
const RESUMES: u32 = 5;
/// Blobs up to this size are uploaded in one request; larger ones in chunks of it.
pub const CHUNK: u64 = 32 << 20;
/// The most an error body or token response may hold.
const MAX_SMALL: u64 = 1 << 20;
/// Time allowed without progress on a connection (connect, or a request's
/// answer without a body to send).
const TIMEOUT: Duration = Duration::from_secs(60);

/// What a manifest request returned.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes, exactly as served.
    pub bytes: Vec<u8>,
    /// The `Content-Type`.
    pub media_type: String,
    /// Their digest (checked against a pinned digest or `Docker-Content-Digest`).
    pub digest: Digest,
}

/// Opens a blob's bytes from an offset (for an upload, and each of its chunks).
pub type OpenAt<'a> = &'a (dyn Fn(u64) -> io::Result<Box<dyn Read + Send>> + Sync);

/// How a blob got into the target repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// It was there already.
    Exists,
    /// Mounted from this other repository of the registry.
    Mounted(String),
    /// Uploaded.
    Uploaded,
}

/// A client for one registry.
pub struct Client {
    registry: String,
    http: reqwest::blocking::Client,
    /// Tried in order until one answers; the first that does is kept.
    bases: Vec<Url>,
    base: Mutex<Option<Url>>,
    credential: Option<Credential>,
    auth: Mutex<AuthState>,
}

/// What the registry asked for, and the tokens it gave.
#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq)]
enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

impl Client {
    /// A client for `registry` (as references name it), with credentials
    /// and TLS from `options`.
    pub fn new(registry: &str, options: &RegistryOptions) -> Result<Client, RegistryError> {
        let credential = super::auth::credential(registry, options.authfile.as_deref())?;
        Client::with_credential(registry, options, credential)
    }

    /// A client that uses `credential` (`msb login` checks it this way).
    pub fn with_credential(
        registry: &str,
        options: &RegistryOptions,
        credential: Option<Credential>,
    ) -> Result<Client, RegistryError> {
        let verify = options.tls_verify != Some(false);
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("msb/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .danger_accept_invalid_certs(!verify);
        if let Some(dir) = &options.cert_dir {
            builder = add_cert_dir(builder, dir)?;
        }
        let http = builder.build().map_err(|e| RegistryError::Tls { registry: registry.into(), cause: chain(&e) })?;
        let host = api_host(registry);
        let url = |scheme: &str| {
            Url::parse(&format!("{scheme}://{host}/"))
                .map_err(|e| RegistryError::invalid(registry, format!("not a registry host: {e}")))
        };
        let mut bases = vec![url("https")?];
        if !verify || is_local(registry) {
            bases.push(url("http")?);
        }
        Ok(Client {
            registry: registry.into(),
            http,
            bases,
            base: Mutex::new(None),
            credential,
            auth: Mutex::default(),
        })
    }

    /// Checks that the registry answers and accepts the credentials
    /// (`msb login`): `GET /v2/` with them.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        self.send("log in", &[], Method::GET, "v2/", &|r| r)?;
        Ok(())
    }

    /// The manifest or index `reference` (a tag or digest) of `repo`.
    pub fn get_manifest(&self, repo: &str, reference: &str, max: u64) -> Result<Fetched, RegistryError> {
        let what = format!("{}/{repo}:{reference}", self.registry);
        let what = if reference.contains(':') {
            what.replacen(&format!(":{reference}"), &format!("@{reference}"), 1)
        } else {
            what
        };
        let path = format!("v2/{repo}/manifests/{reference}");
        let response =
            self.send(&what, &[pull_scope(repo)], Method::GET, &path, &|r| r.header(header::ACCEPT, ACCEPT))?;
        let media_type = content_type(response.headers()).unwrap_or_default();
        let served = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = read_capped(response, max).map_err(|e| self.io_failure(&what, e))?;
        let digest = Digest::of(&bytes);
        let expected = if reference.contains(':') { Some(reference.to_string()) } else { served };
        if let Some(expected) = expected.filter(|e| *e != digest.to_string()) {
            return Err(RegistryError::invalid(
                what,
                format!("manifest has digest {digest}, the registry says {expected}"),
            ));
        }
        Ok(Fetched { bytes, media_type, digest })
    }

    /// Stores `bytes` as manifest `reference` (tag or digest) of `repo`.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let what = format!("{}/{repo}:{reference} (manifest)", self.registry);
        let path = format!("v2/{repo}/manifests/{reference}");
        let response = self.send(&what, &[push_scope(repo)], Method::PUT, &path, &|r| {
            r.header(header::CONTENT_TYPE, media_type).body(bytes.to_vec())
        })?;
        let digest = Digest::of(bytes).to_string();
        match response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            Some(served) if served != digest => Err(RegistryError::invalid(
                what,
                format!("the registry stored the manifest as {served}, its bytes have digest {digest}"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether `repo` has blob `digest`.
    pub fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let what = format!("{}/{repo}@{digest}", self.registry);
        match self.send(&what, &[pull_scope(repo)], Method::HEAD, &format!("v2/{repo}/blobs/{digest}"), &|r| r) {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Blob `digest` of `repo` as a stream of `size` bytes (if known) that
    /// resumes where a broken connection left it.
    pub fn get_blob<'c>(&'c self, repo: &str, digest: &Digest, size: Option<u64>) -> BlobReader<'c> {
        BlobReader {
            client: self,
            what: format!("{}/{repo}@{digest}", self.registry),
            path: format!("v2/{repo}/blobs/{digest}"),
            scope: pull_scope(repo),
            size,
            offset: 0,
            skip: 0,
            response: None,
            resumes: 0,
        }
    }

    /// Makes blob `digest` (`size` bytes, read from `open(offset)`) a blob
    /// of `repo`: nothing if it is there, a mount from one of `mount_from`
    /// (repositories of this registry that have it) if the registry allows,
    /// else an upload (one request up to [`CHUNK`] bytes, chunks of it
    /// above), streamed from `open`. A failed upload starts over, a few times.
    pub fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        mount_from: &[String],
        open: OpenAt<'_>,
    ) -> Result<Upload, RegistryError> {
        if self.has_blob(repo, digest)? {
            return Ok(Upload::Exists);
        }
        let what = format!("{}/{repo}@{digest}", self.registry);
        let uploads = format!("v2/{repo}/blobs/uploads/");
        for from in mount_from.iter().filter(|f| *f != repo) {
            let path = format!("{uploads}?mount={digest}&from={from}");
            let scopes = [push_scope(repo), pull_scope(from)];
            let response = self.send(&what, &scopes, Method::POST, &path, &|r| r.header(header::CONTENT_LENGTH, 0))?;
            if response.status() == StatusCode::CREATED {
                return Ok(Upload::Mounted(from.clone()));
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload(repo, &what, &uploads, digest, size, open) {
                Ok(()) => return Ok(Upload::Uploaded),
                Err(e) if attempt < ATTEMPTS && retryable(&e) => std::thread::sleep(backoff(attempt)),
                Err(e) => return Err(e),
            }
        }
    }

    /// One upload session for a blob: `POST`, then one `PUT` with the
    /// bytes, or `PATCH`es of [`CHUNK`] bytes and an empty `PUT`.
    fn upload(
        &self,
        repo: &str,
        what: &str,
        uploads: &str,
        digest: &Digest,
        size: u64,
        open: OpenAt<'_>,
    ) -> Result<(), RegistryError> {
        let scopes = [push_scope(repo)];
        let started = self.send(what, &scopes, Method::POST, uploads, &|r| r.header(header::CONTENT_LENGTH, 0))?;
        let mut location = self.location(&started, what)?;
        let body = |offset: u64, len: u64| -> Result<Body, RegistryError> {
            let reader = open(offset).map_err(|e| RegistryError::invalid(what, format!("reading the blob: {e}")))?;
            Ok(Body::sized(reader.take(len), len))
        };
        let octets = HeaderValue::from_static("application/octet-stream");
        if size > CHUNK {
            let mut offset = 0;
            while offset < size {
                let len = CHUNK.min(size - offset);
                let range = format!("{offset}-{}", offset + len - 1);
                let body = body(offset, len)?;
                let response = self.send_once(what, &scopes, Method::PATCH, location.clone(), |r| {
                    r.header(header::CONTENT_TYPE, octets.clone())
                        .header(header::CONTENT_RANGE, range)
                        .timeout(body_timeout(len))
                        .body(body)
                })?;
                location = self.location(&response, what)?;
                offset += len;
            }
            location.query_pairs_mut().append_pair("digest", &digest.to_string());
            self.send_once(what, &scopes, Method::PUT, location, |r| r.header(header::CONTENT_LENGTH, 0))?;
        } else {
            let body = body(0, size)?;
            location.query_pairs_mut().append_pair("digest", &digest.to_string());
            self.send_once(what, &scopes, Method::PUT, location, |r| {
                r.header(header::CONTENT_TYPE, octets).timeout(body_timeout(size)).body(body)
            })?;
        }
        Ok(())
    }

    /// The upload URL a response points to next.
    fn location(&self, response: &Response, what: &str) -> Result<Url, RegistryError> {
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
        let location = location.ok_or_else(|| RegistryError::invalid(what, "the registry gave no upload location"))?;
        response.url().join(location).map_err(|e| RegistryError::invalid(what, format!("upload location: {e}")))
    }

    /// The base URL: the first of [`Client::bases`] whose `/v2/` answers.
    /// The ping's challenge, if any, is kept.
    fn base(&self) -> Result<Url, RegistryError> {
        let mut base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(url) = &*base {
            return Ok(url.clone());
        }
        let mut first_error = None;
        for candidate in &self.bases {
            let url = candidate.join("v2/").expect("a fixed path joins");
            match self.with_retries(|| self.http.get(url.clone()).send()) {
                // Over plain HTTP only a registry's answer counts (a TLS
                // server answers 400 to plain HTTP).
                Ok(response) if candidate.scheme() == "https" || is_registry_answer(&response) => {
                    let challenge = challenge(response.headers());
                    if response.status() == StatusCode::UNAUTHORIZED || challenge.is_some() {
                        self.auth.lock().unwrap_or_else(|p| p.into_inner()).challenge = challenge;
                    }
                    *base = Some(candidate.clone());
                    return Ok(candidate.clone());
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let what = format!("{}/v2/", self.registry);
                    return Err(first_error
                        .map_or(RegistryError::Status { what, status, detail: String::new() }, |e| {
                            self.transport_failure(e)
                        }));
                }
                // A server that speaks TLS but fails the handshake (an
                // untrusted certificate) is not tried over plain HTTP.
                Err(e) if is_tls(&e) && !speaks_plain_http(&e) => return Err(self.transport_failure(e)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(self.transport_failure(first_error.expect("at least one base is tried")))
    }

    /// Sends a request built by `build` on `METHOD base/path`, with auth and
    /// retries; returns a success (2xx, 3xx handled by reqwest) response.
    fn send(
        &self,
        what: &str,
        scopes: &[String],
        method: Method,
        path: &str,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let url = self.base()?.join(path).map_err(|e| RegistryError::invalid(what, e.to_string()))?;
        let mut authenticated = false;
        loop {
            let auth = self.authorization(scopes)?;
            let response = self
                .with_retries(|| {
                    let request = build(self.http.request(method.clone(), url.clone()));
                    match &auth {
                        Some(value) => request.header(header::AUTHORIZATION, value.clone()).send(),
                        None => request.send(),
                    }
                })
                .map_err(|e| self.transport_failure(e))?;
            if response.status() == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                self.reauthenticate(&response, scopes, auth.is_some())?;
                continue;
            }
            return self.check(response, what);
        }
    }

    /// Sends a request whose body cannot be sent twice (an upload chunk):
    /// auth as [`Client::send`], no retries here.
    fn send_once(
        &self,
        what: &str,
        scopes: &[String],
        method: Method,
        url: Url,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let auth = self.authorization(scopes)?;
        let mut request = build(self.http.request(method, url));
        if let Some(value) = auth {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = request.send().map_err(|e| self.transport_failure(e))?;
        self.check(response, what)
    }

    /// Sends with retries: dropped connections, 429 and 5xx are tried again
    /// after a backoff (or the registry's `Retry-After`).
    fn with_retries(&self, send: impl Fn() -> reqwest::Result<Response>) -> reqwest::Result<Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match send() {
                Ok(response) if attempt < ATTEMPTS && retry_status(response.status()) => {
                    let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                    std::thread::sleep(wait.min(MAX_BACKOFF));
                }
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                    // A TLS handshake that failed fails again.
                    if is_tls(&e) {
                        return Err(e);
                    }
                    std::thread::sleep(backoff(attempt));
                }
                result => return result,
            }
        }
    }

    /// A failed response as the error it means; a successful one as is.
    fn check(&self, response: Response, what: &str) -> Result<Response, RegistryError> {
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            return Ok(response);
        }
        let detail = error_detail(response);
        let registry = self.registry.clone();
        Err(match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound { what: what.into() },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                RegistryError::Unauthorized { registry, detail: self.unauthorized_detail(&detail) }
            }
            _ => RegistryError::Status { what: what.into(), status: status.as_u16(), detail },
        })
    }

    fn unauthorized_detail(&self, detail: &str) -> String {
        let said = detail.trim_start_matches(": ");
        let said = if said.is_empty() { "authentication required" } else { said };
        match self.credential {
            Some(_) => format!("{said} (the registry refused the credentials)"),
            None => format!("{said} (no credentials for {}: msb login {0}, or --authfile)", self.registry),
        }
    }

    /// The `Authorization` header for a request on `scopes`, if the
    /// registry asked for one.
    fn authorization(&self, scopes: &[String]) -> Result<Option<HeaderValue>, RegistryError> {
        let state = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        let value = match (&state.challenge, &self.credential) {
            (Some(Challenge::Basic), Some(Credential::UsernamePassword(user, password))) => Some(basic(user, password)),
            (Some(Challenge::Bearer { .. }), _) => state.tokens.get(&scopes.join(" ")).map(|t| format!("Bearer {t}")),
            _ => None,
        };
        Ok(value.and_then(|v| HeaderValue::from_str(&v).ok()))
    }

    /// After a 401: learns the challenge and, for Bearer, gets a token for
    /// `scopes`. A Basic challenge answered with credentials already sent
    /// is a refusal.
    fn reauthenticate(&self, response: &Response, scopes: &[String], sent: bool) -> Result<(), RegistryError> {
        let unauthorized = |detail: &str| RegistryError::Unauthorized {
            registry: self.registry.clone(),
            detail: self.unauthorized_detail(detail),
        };
        let Some(challenge) = challenge(response.headers()) else { return Err(unauthorized("")) };
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).challenge = Some(challenge.clone());
        match challenge {
            Challenge::Basic if sent || self.credential.is_none() => Err(unauthorized("")),
            Challenge::Basic => Ok(()),
            Challenge::Bearer { realm, service } => {
                let token = self.token(&realm, service.as_deref(), scopes)?;
                self.auth.lock().unwrap_or_else(|p| p.into_inner()).tokens.insert(scopes.join(" "), token);
                Ok(())
            }
        }
    }

    /// A bearer token from `realm` for `scopes`: with the credentials when
    /// there are some, anonymous otherwise.
    fn token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String, RegistryError> {
        let what = format!("token from {realm}");
        let mut url = Url::parse(realm).map_err(|e| RegistryError::invalid(&what, e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let response = self
            .with_retries(|| {
                let request = match &self.credential {
                    Some(Credential::IdentityToken(token)) => self.http.post(url.clone()).form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                        ("service", service.unwrap_or_default()),
                        ("scope", &scopes.join(" ")),
                        ("client_id", "msb"),
                    ]),
                    Some(Credential::UsernamePassword(user, password)) => {
                        self.http.get(url.clone()).header(header::AUTHORIZATION, basic(user, password))
                    }
                    None => self.http.get(url.clone()),
                };
                request.send()
            })
            .map_err(|e| self.transport_failure(e))?;
        let response = self.check(response, &what)?;
        let bytes = read_capped(response, MAX_SMALL).map_err(|e| self.io_failure(&what, e))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&bytes).map_err(|e| RegistryError::invalid(&what, e.to_string()))?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::invalid(what, "no token in the answer"))
    }

    /// A reqwest failure as a one-line error: TLS, or the connection's cause.
    fn transport_failure(&self, e: reqwest::Error) -> RegistryError {
        let registry = self.registry.clone();
        if is_tls(&e) {
            let cause = chain(&e);
            let hint = " (trust its CA with --cert-dir DIR holding ca.crt, or --tls-verify=false)";
            let hint = if cause.contains("certificate") { hint } else { "" };
            return RegistryError::Tls { registry, cause: format!("{cause}{hint}") };
        }
        let cause = match io_kind(&e) {
            Some(io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe) => {
                "the connection was dropped".to_string()
            }
            _ if e.is_timeout() => "timed out".to_string(),
            _ => chain(&e).replace("client error (Connect): ", "").replace("client error (SendRequest): ", ""),
        };
        RegistryError::Connection { registry, cause }
    }

    fn io_failure(&self, what: &str, e: io::Error) -> RegistryError {
        RegistryError::Connection { registry: self.registry.clone(), cause: format!("{what}: {e}") }
    }
}

/// A blob download as a reader: a connection that breaks (or ends early) is
/// opened again from where it stopped (`Range`), a few times.
pub struct BlobReader<'c> {
    client: &'c Client,
    what: String,
    path: String,
    scope: String,
    size: Option<u64>,
    /// Bytes handed out so far.
    offset: u64,
    /// Bytes of the current response to drop (a server that ignored `Range`).
    skip: u64,
    response: Option<Response>,
    resumes: u32,
}

impl BlobReader<'_> {
    fn open(&mut self) -> Result<(), RegistryError> {
        let range = format!("bytes={}-", self.offset);
        let offset = self.offset;
        let response =
            self.client.send(&self.what, std::slice::from_ref(&self.scope), Method::GET, &self.path, &|r| {
                if offset > 0 { r.header(header::RANGE, &range) } else { r }
            })?;
        self.skip = if response.status() == StatusCode::PARTIAL_CONTENT { 0 } else { offset };
        self.response = Some(response);
        Ok(())
    }

    fn fail(&self, e: RegistryError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.response.is_none() {
                self.open().map_err(|e| self.fail(e))?;
            }
            let response = self.response.as_mut().expect("just opened");
            let result = if self.skip > 0 {
                let mut drop = vec![0u8; self.skip.min(1 << 16) as usize];
                response.read(&mut drop).map(|n| {
                    self.skip -= n as u64;
                    (n, true)
                })
            } else {
                response.read(buf).map(|n| (n, false))
            };
            let broken = match result {
                Ok((0, _)) if self.size.is_some_and(|s| self.offset < s) => {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed early")
                }
                Ok((n, true)) if n > 0 => continue,
                Ok((n, _)) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) => e,
            };
            self.response = None;
            self.resumes += 1;
            if self.resumes > RESUMES {
                return Err(io::Error::new(broken.kind(), format!("{}: {broken} ({RESUMES} resumes)", self.what)));
            }
            std::thread::sleep(backoff(self.resumes));
        }
    }
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The `WWW-Authenticate` challenge msb can answer (Bearer before Basic).
fn challenge(headers: &HeaderMap) -> Option<Challenge> {
    let challenges: Vec<_> = headers.get_all(header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).collect();
    let bearer = challenges.iter().find_map(|c| {
        let (scheme, params) = c.split_once(' ').unwrap_or((c, ""));
        scheme.eq_ignore_ascii_case("bearer").then(|| auth_params(params))
    });
    if let Some(params) = bearer {
        let realm = params.get("realm")?.clone();
        return Some(Challenge::Bearer { realm, service: params.get("service").cloned() });
    }
    challenges
        .iter()
        .any(|c| c.split(' ').next().is_some_and(|s| s.eq_ignore_ascii_case("basic")))
        .then_some(Challenge::Basic)
}

/// `realm="x",service="y"` as a map (quoted values may hold commas).
fn auth_params(params: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        map.insert(key, value.to_string());
        rest = after.trim_start_matches([',', ' ']);
    }
    map
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or(value).trim().to_string())
}

/// The registry's error body as `: CODE: message`, if it sent one.
fn error_detail(response: Response) -> String {
    let Ok(bytes) = read_capped(response, MAX_SMALL) else { return String::new() };
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ApiError>,
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(&bytes) {
        Ok(errors) => errors
            .errors
            .first()
            .map(|e| {
                let said = [e.code.as_deref(), e.message.as_deref()].into_iter().flatten().collect::<Vec<_>>();
                format!(": {}", said.join(": "))
            })
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// At most `max` bytes of a response body, or an error if it holds more.
fn read_capped(response: Response, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    response.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!("more than the limit of {max} bytes")));
    }
    Ok(bytes)
}

fn retry_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn backoff(attempt: u32) -> Duration {
    (Duration::from_millis(250) * 2u32.saturating_pow(attempt.saturating_sub(1))).min(MAX_BACKOFF)
}

/// Time to send `len` bytes: the usual timeout plus 1 s per 512 KiB.
fn body_timeout(len: u64) -> Duration {
    TIMEOUT + Duration::from_secs(len >> 19)
}

/// Whether an upload that failed this way is worth starting again.
fn retryable(e: &RegistryError) -> bool {
    match e {
        RegistryError::Connection { .. } => true,
        RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// Whether `/v2/` answered as a registry does: 200, or 401 with a challenge.
fn is_registry_answer(response: &Response) -> bool {
    response.status() == StatusCode::OK || response.status() == StatusCode::UNAUTHORIZED
}

/// Whether a TLS failure means the server answered in plain HTTP.
fn speaks_plain_http(e: &reqwest::Error) -> bool {
    rustls_error(e).is_some_and(|e| matches!(e, rustls::Error::InvalidMessage(_)))
}

/// Whether `e` failed in the TLS handshake.
fn is_tls(e: &reqwest::Error) -> bool {
    rustls_error(e).is_some()
}

/// The TLS library's error under `e`, if any.
fn rustls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    std::error::Error::source(e).and_then(find_rustls)
}

/// Looks through sources and inside I/O errors (whose `source` skips the
/// error they wrap).
fn find_rustls<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(tls) = find_rustls(inner) {
            return Some(tls);
        }
    }
    e.source().and_then(find_rustls)
}

/// The kind of the I/O error under `e`, if any.
fn io_kind(e: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// An error with its causes, `: `-joined, without repeats.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() { e.to_string() } else { parts.join(": ") }
}

/// The CA certificates (`*.crt`) and client certificate (`*.cert` with
/// `*.key`) of a containers `certs.d`-style directory.
fn add_cert_dir(
    mut builder: reqwest::blocking::ClientBuilder,
    dir: &std::path::Path,
) -> Result<reqwest::blocking::ClientBuilder, RegistryError> {
    let bad = |path: &std::path::Path, reason: String| RegistryError::Credentials {
        source_name: path.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in &paths {
        let read = || std::fs::read(path).map_err(|e| bad(path, e.to_string()));
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                for cert in reqwest::Certificate::from_pem_bundle(&read()?).map_err(|e| bad(path, chain(&e)))? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Some("cert") => {
                let key = path.with_extension("key");
                let key_bytes =
                    std::fs::read(&key).map_err(|e| bad(&key, format!("the key of {}: {e}", path.display())))?;
                let identity =
                    reqwest::Identity::from_pem(&[read()?, key_bytes].concat()).map_err(|e| bad(path, chain(&e)))?;
                builder = builder.identity(identity);
            }
            _ => {}
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
            ),
        );
        assert_eq!(
            challenge(&headers),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="Registry Realm""#));
        assert_eq!(challenge(&headers), Some(Challenge::Basic));
        let params = auth_params(r#"realm="a,b", service=svc"#);
        assert_eq!((params["realm"].as_str(), params["service"].as_str()), ("a,b", "svc"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(2) && backoff(30) == MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;
    use std::io::Write;

    /// A server on 127.0.0.1 that answers every connection with `reply`.
    fn server(reply: &'static [u8]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(reply);
            }
        });
        addr
    }

    #[test]
    fn a_plain_http_server_is_told_apart() {
        let addr = server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        let client = Client::with_credential(&addr, &RegistryOptions::default(), None).unwrap();
        let e = client.http.get(format!("https://{addr}/v2/")).send().unwrap_err();
        assert!(is_tls(&e) && speaks_plain_http(&e), "{}", chain(&e));
        client.check_login().unwrap();
        assert_eq!(client.base.lock().unwrap().as_ref().unwrap().scheme(), "http");
    }
}
