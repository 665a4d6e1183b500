//! Registries for the `pull`/`push` tests: a real CNCF distribution registry
//! (`docker-registry`) on 127.0.0.1, plain or TLS with htpasswd auth, and a
//! recording [`Proxy`] in front of a plain one for what a real registry does
//! not do on demand: dropped connections, cut downloads, 503/429 answers and
//! a bearer-token front.
//!
//! ```ignore
//! let registry = Registry::plain();
//! let proxy = Proxy::new(registry.addr()).drop_first(1).start();
//! push_with_skopeo("oci-archive:base.tar", &format!("docker://{}/test/a:1", proxy.addr()), &[..]);
//! assert!(proxy.requests().iter().any(|r| r.starts_with("PUT /v2/test/a/manifests/")));
//! ```

use super::{require, run, scratch, texts};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a registry may take to answer `/v2/` after it is started.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A `docker-registry serve` with a config, storage and log of its own in a
/// temp dir; killed (and waited for) on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    tls: bool,
}

impl Registry {
    /// A registry on plain HTTP, without auth.
    pub fn plain() -> Registry {
        Registry::start(None)
    }

    /// A registry on HTTPS (a CA and a server certificate for 127.0.0.1 and
    /// localhost, made with `openssl`; the CA is in [`Registry::cert_dir`])
    /// accepting only `user`/`password` (htpasswd, bcrypt).
    pub fn tls_with_auth(user: &str, password: &str) -> Registry {
        Registry::start(Some((user, password)))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A directory holding the CA as `ca.crt` (the containers `certs.d`
    /// convention: skopeo's `--cert-dir`, `--src-cert-dir`, `--dest-cert-dir`).
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// `http://ADDR/PATH` or `https://ADDR/PATH`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// The last lines of the registry's log (warnings and errors).
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("registry.log"))
    }

    fn start(auth: Option<(&str, &str)>) -> Registry {
        require("docker-registry");
        require("curl");
        let mut dir = scratch();
        let d = dir.path().display().to_string();
        let mut extra = String::new();
        if let Some((user, password)) = auth {
            require("openssl");
            require("htpasswd");
            make_certs(dir.path());
            let entry = run(Command::new("htpasswd").args(["-Bbn", user, password]));
            std::fs::write(dir.path().join("htpasswd"), entry.trim_end()).expect("write htpasswd");
            extra = format!(
                "  tls:\n    certificate: \"{d}/server.crt\"\n    key: \"{d}/server.key\"\n\
                 auth:\n  htpasswd:\n    realm: test-registry\n    path: \"{d}/htpasswd\"\n"
            );
        }
        let log_path = dir.path().join("registry.log");
        for attempt in 1.. {
            let addr = free_addr();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: \"{d}/data\"\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: msb-test-secret\n{extra}"
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(&log_path).expect("create registry log");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("run docker-registry: {e}"));
            let mut registry = Registry { child, dir, addr, tls: auth.is_some() };
            if registry.wait_ready() {
                return registry;
            }
            let log = registry.log_tail();
            assert!(
                attempt < 5 && log.contains("address already in use"),
                "docker-registry on {} exited at start; {}:\n{log}",
                registry.addr,
                log_path.display()
            );
            dir = std::mem::replace(&mut registry.dir, scratch());
        }
        unreachable!("the loop returns or panics")
    }

    /// Polls `/v2/` until it answers (any HTTP status): true; false if the
    /// registry exited; panics, with the log, at the deadline.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_DEADLINE;
        let ca = self.cert_dir().join("ca.crt");
        loop {
            if self.child.try_wait().expect("poll docker-registry").is_some() {
                return false;
            }
            let mut curl = Command::new("curl");
            curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]);
            if self.tls {
                curl.arg("--cacert").arg(&ca);
            }
            let out = curl.arg(self.url("/v2/")).output().unwrap_or_else(|e| panic!("run curl: {e}"));
            if !matches!(&out.stdout[..], b"" | b"000") {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry on {} did not answer /v2/ within {START_DEADLINE:?}; {}:\n{}",
                self.addr,
                self.dir.path().join("registry.log").display(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (`certs/ca.crt`) and a server certificate it signs (`server.crt`,
/// `server.key`; SAN IP:127.0.0.1, DNS:localhost), in `dir`.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir certs");
    let cnf = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = msb test CA\n\
               [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
               [server]\nsubjectAltName = IP:127.0.0.1,DNS:localhost\nbasicConstraints = CA:FALSE\n\
               keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n";
    std::fs::write(dir.join("openssl.cnf"), cnf).expect("write openssl.cnf");
    let openssl = |args: &str| run(Command::new("openssl").args(args.split(' ')).current_dir(dir));
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!("req -x509 -config openssl.cnf -extensions ca {key} -keyout ca.key -out certs/ca.crt -days 2"));
    openssl(&format!("req -new -config openssl.cnf -subj /CN=localhost {key} -keyout server.key -out server.csr"));
    openssl(
        "x509 -req -in server.csr -CA certs/ca.crt -CAkey ca.key -set_serial 2 -days 2 \
         -extfile openssl.cnf -extensions server -out server.crt",
    );
}

/// A port of 127.0.0.1 free a moment ago (bound to port 0, then released).
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    format!("127.0.0.1:{}", listener.local_addr().expect("local addr").port())
}

/// The last 30 lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Sets up a [`Proxy`]: its upstream and the faults it injects.
pub struct ProxyBuilder(State);

impl ProxyBuilder {
    /// The first `n` connections are closed right after their request head
    /// is read, with no response.
    pub fn drop_first(mut self, n: usize) -> Self {
        self.0.drops = AtomicUsize::new(n);
        self
    }

    /// The first `n` requests get a synthetic `code` response with
    /// `Retry-After: 0` (after any dropped ones).
    pub fn status_first(mut self, code: u16, n: usize) -> Self {
        (self.0.status, self.0.statuses) = (code, AtomicUsize::new(n));
        self
    }

    /// The first successful `GET .../blobs/sha256:...` response is cut
    /// after `bytes` bytes of body (the connection closed mid-body).
    pub fn cut_first_blob_get(mut self, bytes: u64) -> Self {
        self.0.cut = Mutex::new(Some(bytes));
        self
    }

    /// A token-auth front: `/v2/...` needs `Authorization: Bearer <token>`
    /// (else 401 and a `WWW-Authenticate: Bearer realm="http://ADDR/token"`
    /// challenge, scoped to the path's repository); `GET /token` hands out
    /// tokens, to HTTP Basic `user:password` if `credentials` are given, to
    /// anyone if `None`. Authorized requests go on without `Authorization`.
    pub fn bearer(mut self, credentials: Option<(&str, &str)>) -> Self {
        self.0.bearer = Some(credentials.map(|(user, password)| base64(format!("{user}:{password}").as_bytes())));
        self
    }

    /// Listens on 127.0.0.1 and serves until dropped.
    pub fn start(mut self) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        self.0.addr = listener.local_addr().expect("local addr").to_string();
        let state = Arc::new(self.0);
        let s = state.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, &s);
                    });
                }
            }
        });
        Proxy { state, accept: Some(accept) }
    }
}

/// A one-request-per-connection HTTP proxy in front of a plain registry
/// that records every request and injects the faults its builder set.
/// The `Host` header goes on unchanged, so the registry's `Location`s point
/// back at the proxy. Stops on drop.
pub struct Proxy {
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT` of a plain registry).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(upstream: &str) -> ProxyBuilder {
        ProxyBuilder(State { upstream: upstream.to_string(), ..State::default() })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.state.addr
    }

    /// Every request so far, as `"METHOD /path?query"` (the target as sent,
    /// percent-encoded), in arrival order; dropped and refused ones too.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state.requests).clone()
    }

    /// How many tokens the bearer front handed out.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.state.tokens).len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.state.addr); // wakes the accept loop
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A proxy's settings and what it saw.
#[derive(Default)]
struct State {
    upstream: String,
    addr: String,
    drops: AtomicUsize,
    status: u16,
    statuses: AtomicUsize,
    cut: Mutex<Option<u64>>,
    /// Bearer front: `Some(expected Basic credentials, if any)`.
    bearer: Option<Option<String>>,
    requests: Mutex<Vec<String>>,
    tokens: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Locks a mutex, poisoned or not (a panicking test thread).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves one connection; I/O errors just end it.
fn serve(client: TcpStream, s: &State) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    // A TLS hello (a client trying https first) or garbage: close, as a
    // plain HTTP server would fail it.
    if !reader.fill_buf()?.first().is_some_and(u8::is_ascii_uppercase) {
        return Ok(());
    }
    let head = read_head(&mut reader)?;
    let mut words = head[0].split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    lock(&s.requests).push(format!("{method} {target}"));
    if take(&s.drops) {
        return Ok(());
    }
    if header(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    if take(&s.statuses) {
        copy_body(&mut reader, &head, &mut io::sink())?;
        return respond(&mut client, s.status, &[("Retry-After", "0".into())], "");
    }
    let mut drop_headers = vec!["connection", "keep-alive", "proxy-connection", "expect"];
    if let Some(basic) = &s.bearer {
        let is_token = path == "/token";
        if is_token || !authorized(s, &head) {
            copy_body(&mut reader, &head, &mut io::sink())?;
            if is_token {
                return token(&mut client, s, basic.as_deref(), &head);
            }
            let scope = repository(path).map(|r| format!(",scope=\"repository:{r}:pull,push\"")).unwrap_or_default();
            let challenge = format!("Bearer realm=\"http://{}/token\",service=\"test-registry\"{scope}", s.addr);
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            return respond(&mut client, 401, &[("WWW-Authenticate", challenge)], body);
        }
        drop_headers.push("authorization");
    }
    let mut upstream = TcpStream::connect(&s.upstream)?;
    upstream.set_read_timeout(Some(Duration::from_secs(120)))?;
    upstream.write_all(head_text(&head, &drop_headers).as_bytes())?;
    copy_body(&mut reader, &head, &mut upstream)?;

    let mut from = BufReader::new(upstream);
    let head = read_head(&mut from)?;
    client.write_all(head_text(&head, &["connection", "keep-alive"]).as_bytes())?;
    let ok = head[0].split(' ').nth(1).is_some_and(|code| code == "200" || code == "206");
    let cut = if method == "GET" && path.contains("/blobs/sha256:") && ok { lock(&s.cut).take() } else { None };
    match cut {
        Some(bytes) => io::copy(&mut from.take(bytes), &mut client)?,
        None => io::copy(&mut from, &mut client)?,
    };
    client.shutdown(Shutdown::Write)
}

/// Answers `GET /token`: a new token, if the Basic credentials match.
fn token(client: &mut TcpStream, s: &State, basic: Option<&str>, head: &[String]) -> io::Result<()> {
    let given = header(head, "authorization").and_then(|v| v.strip_prefix("Basic ").or(v.strip_prefix("basic ")));
    if basic.is_some_and(|b| given.map(str::trim) != Some(b)) {
        let challenge = ("WWW-Authenticate", "Basic realm=\"test-registry\"".to_string());
        return respond(client, 401, &[challenge], r#"{"details":"wrong credentials"}"#);
    }
    let mut tokens = lock(&s.tokens);
    let t = format!("msb-test-token-{}", tokens.len() + 1);
    tokens.push(t.clone());
    drop(tokens);
    let body = format!(r#"{{"token":"{t}","access_token":"{t}"}}"#);
    respond(client, 200, &[("Content-Type", "application/json".into())], &body)
}

/// Whether the request carries a token the bearer front handed out.
fn authorized(s: &State, head: &[String]) -> bool {
    let token = header(head, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    token.is_some_and(|t| lock(&s.tokens).iter().any(|issued| issued == t.trim()))
}

/// The repository a `/v2/NAME/{manifests,blobs,tags}/...` path names.
fn repository(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"].iter().filter_map(|m| rest.find(m)).min().map(|i| &rest[..i])
}

/// Takes one from a counter of requests still to treat specially.
fn take(counter: &AtomicUsize) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

/// Writes a whole response with `Connection: close`, then closes our side.
fn respond(to: &mut TcpStream, code: u16, headers: &[(&str, String)], body: &str) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {code} Test\r\nDocker-Distribution-API-Version: registry/2.0\r\n");
    for (key, value) in headers {
        out += &format!("{key}: {value}\r\n");
    }
    out += &format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    to.write_all(out.as_bytes())?;
    to.shutdown(Shutdown::Write)
}

/// Reads an HTTP head (request or status line, then headers) up to its
/// blank line, without the line ends; at most 100 lines of 8 KiB.
fn read_head(from: &mut impl BufRead) -> io::Result<Vec<String>> {
    let mut head = Vec::new();
    loop {
        let line = read_line(from)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        head.push(line.to_string());
        if head.len() > 100 {
            return Err(io::Error::other("a head of more than 100 lines"));
        }
    }
    if head.is_empty() {
        return Err(io::Error::other("an empty head"));
    }
    Ok(head)
}

/// One line with its line end, at most 8 KiB.
fn read_line(from: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    from.take(8192).read_line(&mut line)?;
    if !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a line cut short or longer than 8 KiB"));
    }
    Ok(line)
}

/// The value of header `key` (case-insensitive).
fn header<'a>(head: &'a [String], key: &str) -> Option<&'a str> {
    head[1..].iter().find(|l| name(l).eq_ignore_ascii_case(key)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim())
}

/// A head as sent on, without the headers named in `drop` (lowercase),
/// with `Connection: close`.
fn head_text(head: &[String], drop: &[&str]) -> String {
    let mut out = format!("{}\r\n", head[0]);
    for line in head[1..].iter().filter(|l| !drop.contains(&name(l).to_ascii_lowercase().as_str())) {
        out += &format!("{line}\r\n");
    }
    out + "Connection: close\r\n\r\n"
}

/// A header line's name.
fn name(line: &str) -> &str {
    line.split(':').next().unwrap_or("").trim()
}

/// Copies a request body: `Content-Length` bytes, or the raw chunks of a
/// `Transfer-Encoding: chunked` body up to and including its last chunk.
fn copy_body(from: &mut impl BufRead, head: &[String], to: &mut impl Write) -> io::Result<()> {
    if header(head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let line = read_line(from)?;
            to.write_all(line.as_bytes())?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| io::Error::other("a bad chunk size"))?;
            if size == 0 {
                loop {
                    let trailer = read_line(from)?;
                    to.write_all(trailer.as_bytes())?;
                    if trailer == "\r\n" || trailer == "\n" {
                        return Ok(());
                    }
                }
            }
            exact(from, size + 2, to)?;
        }
    }
    let len = header(head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    exact(from, len, to)
}

/// Copies exactly `len` bytes.
fn exact(from: &mut impl BufRead, len: u64, to: &mut impl Write) -> io::Result<()> {
    if io::copy(&mut from.take(len), to)? < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a body cut short"));
    }
    Ok(())
}

/// Standard base64 with padding (HTTP Basic credentials).
fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// `skopeo inspect --raw EXTRA REFERENCE`: the manifest's bytes, exactly.
pub fn inspect_raw(reference: &str, extra: &[&str]) -> Vec<u8> {
    require("skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]).args(extra).arg(reference);
    let out = cmd.output().unwrap_or_else(|e| panic!("run skopeo: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", texts(&out).1);
    out.stdout
}

/// `skopeo inspect EXTRA REFERENCE`, as JSON (`Digest`, `Layers`, ...).
pub fn inspect(reference: &str, extra: &[&str]) -> serde_json::Value {
    require("skopeo");
    let out = run(Command::new("skopeo").arg("inspect").args(extra).arg(reference));
    serde_json::from_str(&out).expect("skopeo inspect prints JSON")
}

/// `skopeo copy EXTRA SRC DEST`, e.g. from `oci-archive:PATH` to
/// `docker://ADDR/REPO:TAG`: seeds a registry.
pub fn push_with_skopeo(src: &str, dest: &str, extra: &[&str]) {
    require("skopeo");
    run(Command::new("skopeo").arg("copy").args(extra).arg(src).arg(dest));
}
