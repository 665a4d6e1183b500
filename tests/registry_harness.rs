//! The harness of `tests/common/registry.rs` (a real distribution
//! registry, plain or TLS with auth, and a fault-injecting, recording
//! proxy) checked with skopeo and curl: what the msb tests stand on.

use super::common;
use common::registry::*;
use common::*;
use sha2::{Digest, Sha256};
use std::process::Command;

/// `oci-archive:` of the fixture image (two gzip layers).
fn fixture() -> String {
    format!("oci-archive:{}", oci_fixtures().join("oci-archive.tar").display())
}

/// Runs `skopeo ARGS`, asserting it fails; returns its stderr.
fn skopeo_fails(args: &[&str]) -> String {
    require("skopeo");
    let out = Command::new("skopeo").args(args).output().expect("run skopeo");
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "skopeo {args:?} succeeded:\n{stdout}{stderr}");
    stderr
}

/// `curl -s -o OUT -w %{http_code} URL`: (curl's exit code, HTTP status).
fn curl(url: &str, out: &std::path::Path, extra: &[&str]) -> (i32, String) {
    require("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o"]).arg(out).args(["-w", "%{http_code}"]).args(extra).arg(url);
    let res = cmd.output().expect("run curl");
    (res.status.code().unwrap_or(-1), String::from_utf8_lossy(&res.stdout).into_owned())
}

#[test]
fn plain_registry_round_trips_a_manifest() {
    let registry = Registry::plain();
    let dest = format!("docker://{}/test/a:1", registry.addr());
    push_with_skopeo(&fixture(), &dest, &["--dest-tls-verify=false"]);
    let raw = inspect_raw(&dest, &["--tls-verify=false"]);
    let info = inspect(&dest, &["--tls-verify=false"]);
    assert_eq!(info["Digest"], format!("sha256:{}", hex::encode(Sha256::digest(&raw))));
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(2), "{info}");
}

#[test]
fn tls_registry_needs_the_ca_and_the_password() {
    let registry = Registry::tls_with_auth("alice", "s3cret");
    let certs = registry.cert_dir();
    let certs = certs.to_str().expect("a UTF-8 path");
    let dest = format!("docker://{}/test/a:1", registry.addr());
    let src = fixture();
    push_with_skopeo(&src, &dest, &["--dest-cert-dir", certs, "--dest-creds", "alice:s3cret"]);
    let info = inspect(&dest, &["--cert-dir", certs, "--creds", "alice:s3cret"]);
    assert!(info["Digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{info}");

    let wrong = skopeo_fails(&["copy", "--dest-cert-dir", certs, "--dest-creds", "alice:wrong", &src, &dest]);
    assert!(wrong.contains("401") || wrong.to_lowercase().contains("unauthorized"), "{wrong}");
    let no_ca = skopeo_fails(&["copy", "--dest-creds", "alice:s3cret", &src, &dest]);
    assert!(no_ca.contains("certificate") || no_ca.contains("x509"), "{no_ca}");
}

#[test]
fn proxy_records_pushes_and_mounts() {
    let registry = Registry::plain();
    let proxy = Proxy::new(registry.addr()).start();
    let tls = ["--dest-tls-verify=false"];
    push_with_skopeo(&fixture(), &format!("docker://{}/test/rec:1", proxy.addr()), &tls);
    let first = proxy.requests();
    assert!(first.iter().any(|r| r.starts_with("POST /v2/test/rec/blobs/uploads/")), "{first:#?}");
    assert!(first.contains(&"PUT /v2/test/rec/manifests/1".to_string()), "{first:#?}");

    // Every blob is there: a second push uploads nothing.
    push_with_skopeo(&fixture(), &format!("docker://{}/test/rec:2", proxy.addr()), &tls);
    let second = proxy.requests()[first.len()..].to_vec();
    assert!(!second.iter().any(|r| r.starts_with("POST ")), "{second:#?}");
    assert!(second.contains(&"PUT /v2/test/rec/manifests/2".to_string()), "{second:#?}");

    // Into another repository, skopeo mounts the layers it pushed before
    // (query as sent: `?from=test%2Frec&mount=sha256%3A...`).
    let other = format!("docker://{}/test/other:1", proxy.addr());
    push_with_skopeo(&fixture(), &other, &tls);
    let third = proxy.requests()[first.len() + second.len()..].to_vec();
    let info = inspect(&other, &["--tls-verify=false"]);
    for layer in info["Layers"].as_array().expect("layers") {
        let mount = format!("mount={}", layer.as_str().expect("a digest").replace(':', "%3A"));
        let mounted = |r: &String| r.starts_with("POST /v2/test/other/blobs/uploads/?") && r.contains(&mount);
        assert!(third.iter().any(mounted), "{layer} not mounted: {third:#?}");
    }
    assert!(third.iter().any(|r| r.contains("from=test%2Frec")), "{third:#?}");
}

#[test]
fn proxy_drops_a_connection_and_answers_503() {
    let registry = Registry::plain();
    let dir = scratch();
    let out = dir.path().join("body");
    let proxy = Proxy::new(registry.addr()).drop_first(1).status_first(503, 1).start();
    let url = format!("http://{}/v2/", proxy.addr());
    assert_eq!(curl(&url, &out, &[]), (52, "000".to_string()), "a dropped connection: curl's empty reply");
    assert_eq!(curl(&url, &out, &["-D", "-"]).1.lines().next(), Some("HTTP/1.1 503 Test"));
    let (code, heads) = curl(&url, &out, &["-D", "-"]);
    assert_eq!((code, heads.lines().next()), (0, Some("HTTP/1.1 200 OK")), "{heads}");
    assert_eq!(proxy.requests(), vec!["GET /v2/"; 3]);
}

#[test]
fn proxy_retry_after_is_zero() {
    let registry = Registry::plain();
    let dir = scratch();
    let proxy = Proxy::new(registry.addr()).status_first(429, 1).start();
    let (_, heads) = curl(&format!("http://{}/v2/", proxy.addr()), &dir.path().join("body"), &["-D", "-"]);
    assert!(heads.starts_with("HTTP/1.1 429 ") && heads.contains("Retry-After: 0\r\n"), "{heads}");
}

#[test]
fn proxy_bearer_front_hands_out_tokens() {
    let registry = Registry::plain();
    let proxy = Proxy::new(registry.addr()).bearer(Some(("bob", "pw"))).start();
    let dest = format!("docker://{}/test/b:1", proxy.addr());
    let src = fixture();
    push_with_skopeo(&src, &dest, &["--dest-tls-verify=false", "--dest-creds", "bob:pw"]);
    let info = inspect(&dest, &["--tls-verify=false", "--creds", "bob:pw"]);
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(2), "{info}");
    assert!(proxy.tokens_issued() > 0);
    let requests = proxy.requests();
    assert!(requests.iter().any(|r| r.starts_with("GET /token?")), "{requests:#?}");

    let dir = scratch();
    let out = dir.path().join("body");
    let (_, heads) = curl(&format!("http://{}/v2/test/b/manifests/1", proxy.addr()), &out, &["-D", "-"]);
    let challenge = format!(
        "WWW-Authenticate: Bearer realm=\"http://{}/token\",service=\"test-registry\",scope=\"repository:test/b:pull,push\"",
        proxy.addr()
    );
    assert!(heads.starts_with("HTTP/1.1 401 ") && heads.contains(&challenge), "{heads}");
    let token = format!("http://{}/token?service=test-registry", proxy.addr());
    assert_eq!(curl(&token, &out, &["-u", "bob:wrong"]).1, "401");
    let wrong = skopeo_fails(&["inspect", "--tls-verify=false", "--creds", "bob:wrong", &dest]);
    assert!(wrong.contains("401") || wrong.to_lowercase().contains("unauthorized"), "{wrong}");
}

#[test]
fn proxy_cuts_the_first_blob_download() {
    let registry = Registry::plain();
    let dest = format!("docker://{}/test/a:1", registry.addr());
    push_with_skopeo(&fixture(), &dest, &["--dest-tls-verify=false"]);
    let info = inspect(&dest, &["--tls-verify=false"]);
    let layer = info["Layers"][0].as_str().expect("a layer digest").to_string();

    let proxy = Proxy::new(registry.addr()).cut_first_blob_get(1000).start();
    let url = format!("http://{}/v2/test/a/blobs/{layer}", proxy.addr());
    let dir = scratch();
    let out = dir.path().join("blob");
    assert_eq!(curl(&url, &out, &[]), (18, "200".to_string()), "curl: transfer closed with bytes remaining");
    assert_eq!(std::fs::metadata(&out).expect("partial blob").len(), 1000);
    assert_eq!(curl(&url, &out, &[]), (0, "200".to_string()));
    let whole = std::fs::read(&out).expect("read blob");
    assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&whole))), layer);
}

#[test]
fn proxy_forwards_a_chunked_upload() {
    let registry = Registry::plain();
    let proxy = Proxy::new(registry.addr()).start();
    let dir = scratch();
    let (blob, out) = (dir.path().join("blob"), dir.path().join("out"));
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&blob, &bytes).expect("write blob");
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));

    let (_, heads) =
        curl(&format!("http://{}/v2/test/c/blobs/uploads/", proxy.addr()), &out, &["-X", "POST", "-D", "-"]);
    let location = heads.lines().find_map(|l| l.strip_prefix("Location: ")).expect("a Location header");
    assert!(location.starts_with(&format!("http://{}/", proxy.addr())), "the Location points at the proxy: {location}");
    let put = format!("{location}&digest={}", digest.replace(':', "%3A"));
    let data = format!("@{}", blob.display());
    let headers = ["Transfer-Encoding: chunked", "Expect: 100-continue", "Content-Type: application/octet-stream"];
    let mut args = vec!["-X", "PUT", "--data-binary", &data];
    args.extend(headers.iter().flat_map(|h| ["-H", h]));
    assert_eq!(curl(&put, &out, &args), (0, "201".to_string()));
    let (code, status) = curl(&format!("http://{}/v2/test/c/blobs/{digest}", proxy.addr()), &out, &[]);
    assert_eq!((code, status.as_str()), (0, "200"));
    assert_eq!(std::fs::read(&out).expect("read blob"), bytes);
}
