//! `msb pull`, `msb push`, `msb login` against real registries: the CNCF
//! distribution registry on 127.0.0.1 (plain, and TLS with htpasswd), and a
//! recording proxy for dropped connections, 503s, cut downloads and a
//! bearer-token front. `skopeo inspect` confirms what the registry holds.

mod common;
mod registry_harness;

use common::registry::{Proxy, Registry, inspect, inspect_raw};
use common::{Msb, fixtures, oci_fixtures, scratch};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `skopeo inspect --raw` of `docker://REFERENCE` on a plain registry.
fn raw(reference: &str) -> Vec<u8> {
    inspect_raw(&format!("docker://{reference}"), &["--tls-verify=false"])
}

fn docker_fixtures() -> PathBuf {
    fixtures("make-docker.sh")
}

/// `msb push --format json ARGS`: what was pushed.
fn push(msb: &Msb, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["push", "--format", "json"];
    all.extend_from_slice(args);
    let (stdout, _) = msb.ok(&all);
    serde_json::from_str(&stdout).expect("push prints JSON")
}

/// The statuses of a push's blobs.
fn statuses(pushed: &Value) -> Vec<String> {
    pushed["blobs"].as_array().expect("blobs").iter().map(|b| b["status"].as_str().unwrap_or("").to_string()).collect()
}

/// The layers of `msb inspect` with their EROFS images' bytes.
fn layers_with_images(msb: &Msb, reference: &str) -> Vec<(Value, Vec<u8>)> {
    let image = msb.inspect(reference);
    image["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let bytes = std::fs::read(l["erofs"].as_str().expect("erofs path")).expect("read layer image");
            (serde_json::json!([l["digest"], l["diff_id"], l["media_type"], l["size"]]), bytes)
        })
        .collect()
}

fn blob_uploads(proxy: &Proxy) -> Vec<String> {
    proxy.requests().into_iter().filter(|r| r.contains("/blobs/uploads/")).collect()
}

#[test]
fn push_from_the_store_then_pull_into_a_fresh_store_changes_no_digest() {
    let registry = Registry::plain();
    let proxy = Proxy::new(registry.addr()).start();
    let msb = Msb::new();
    let archive = oci_fixtures().join("oci-archive.tar");
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    let stored = msb.inspect("alpine:3.20");
    let dest = format!("{}/test/alpine:3.20", proxy.addr());

    let first = push(&msb, &["alpine:3.20", &dest]);
    assert_eq!(first[0]["digest"], stored["manifest_digest"], "the registry's digest is the store's");
    assert!(statuses(&first[0]).iter().all(|s| s == "uploaded"), "{first:?}");
    let manifest = raw(&dest);
    assert_eq!(sha256(&manifest), stored["manifest_digest"].as_str().unwrap());
    let seen = inspect(&format!("docker://{dest}"), &["--tls-verify=false"]);
    assert_eq!(seen["Digest"], stored["manifest_digest"]);

    // A second push asks (HEAD) and uploads nothing.
    let before = blob_uploads(&proxy).len();
    let second = push(&msb, &["alpine:3.20", &dest]);
    assert!(statuses(&second[0]).iter().all(|s| s == "exists"), "{second:?}");
    assert_eq!(blob_uploads(&proxy).len(), before, "no upload the second time");

    // Pulled into a fresh store: the same manifest, config, layers, EROFS images.
    let fresh = Msb::new();
    let (stdout, stderr) = fresh.ok(["pull", "--format", "json", &dest]);
    assert!(stderr.contains(&format!("✓ Pulled {dest}")), "{stderr}");
    let pulled: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pulled[0]["manifest_digest"], stored["manifest_digest"]);
    assert_eq!(pulled[0]["config_digest"], stored["config_digest"]);
    assert_eq!(layers_with_images(&fresh, &dest), layers_with_images(&msb, "alpine:3.20"));
    fresh.ok(["check"]);
    // Pulling again downloads no layer.
    let downloads = |p: &Proxy| p.requests().iter().filter(|r| r.starts_with("GET ") && r.contains("/blobs/")).count();
    let before = downloads(&proxy);
    fresh.ok(["pull", "-q", &dest]);
    let layer_gets = downloads(&proxy) - before;
    assert!(layer_gets <= 1, "only the config may be fetched again, got {layer_gets} blob GETs");

    // By digest, too.
    let pinned = format!("{}/test/alpine@{}", proxy.addr(), stored["manifest_digest"].as_str().unwrap());
    let other = Msb::new();
    other.ok(["pull", "-q", &pinned]);
    assert_eq!(other.inspect(&pinned)["manifest_digest"], stored["manifest_digest"]);
}

#[test]
fn push_from_archives_of_every_format_gives_the_digests_a_load_gives() {
    let registry = Registry::plain();
    let oci = oci_fixtures();
    let docker = docker_fixtures();
    let archives: Vec<(&str, PathBuf)> = vec![
        ("oci-archive", oci.join("oci-archive.tar")),
        ("oci-dir", oci.join("oci-dir")),
        ("docker-archive", docker.join("docker-archive.tar")),
        ("docker25", docker.join("docker25.tar")),
        ("classic", docker.join("classic.tar")),
        ("v1", docker.join("v1.tar")),
    ];
    for (name, archive) in archives {
        let msb = Msb::new();
        let path = archive.to_str().unwrap();
        let dest = format!("{}/formats/{name}:1", registry.addr());
        // classic.tar holds two images: push -i refuses one DEST, and
        // --to-registry pushes each under its own name.
        if name == "classic" {
            let error = msb.fails(["push", "-i", path, &dest]);
            assert!(error.contains("images; push one"), "{error}");
            let pushed = push(&msb, &["-i", path, "--to-registry", &format!("{}/{name}", registry.addr())]);
            let alpine =
                pushed.iter().find(|p| p["ref"].as_str().unwrap().contains("alpine:3.20")).expect("alpine pushed");
            msb.ok(["load", "-q", "-i", path]);
            assert_eq!(alpine["digest"], msb.inspect("alpine:3.20")["manifest_digest"], "{name}");
            let dest = alpine["ref"].as_str().unwrap();
            assert_eq!(sha256(&raw(dest)), alpine["digest"].as_str().unwrap(), "{name}");
            continue;
        }
        msb.ok(["images"]);
        let before = msb.snapshot();
        let pushed = push(&msb, &["-i", path, &dest]);
        let after = msb.snapshot();
        let changed: Vec<_> = after.iter().filter(|(p, size)| before.get(*p) != Some(size)).map(|(p, _)| p).collect();
        assert!(changed.iter().all(|p| p.starts_with("blob-locations")), "{name}: push -i wrote {changed:?}");
        let images: Value = serde_json::from_str(&msb.ok(["images", "--format", "json"]).0).unwrap();
        assert_eq!(images, serde_json::json!([]), "{name}: push -i loads nothing");
        msb.ok(["load", "-q", "-i", path]);
        let loaded = msb.inspect("alpine:3.20");
        assert_eq!(pushed[0]["digest"], loaded["manifest_digest"], "{name}");
        assert_eq!(sha256(&raw(&dest)), loaded["manifest_digest"].as_str().unwrap(), "{name}");
        let uncompressed = pushed[0]["blobs"].as_array().unwrap().iter().filter(|b| b["uncompressed"] == true).count();
        let stored_uncompressed = loaded["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["media_type"].as_str().unwrap().ends_with(".tar"))
            .count();
        assert_eq!(uncompressed, stored_uncompressed, "{name}: uncompressed layers stay uncompressed");
    }
    // Not an archive: it says what the file looks like, as load does.
    let msb = Msb::new();
    let dir = scratch();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello\n").unwrap();
    let error = msb.fails(["push", "-i", text.to_str().unwrap(), &format!("{}/x/y:1", registry.addr())]);
    assert!(error.contains("not a recognized image archive"), "{error}");
}

#[test]
fn a_blob_another_repository_has_is_mounted_and_large_blobs_go_in_chunks() {
    let registry = Registry::plain();
    let proxy = Proxy::new(registry.addr()).start();
    let msb = Msb::new();
    let dir = scratch();
    let layout = big_layout(dir.path(), 40 << 20);
    let layout = layout.to_str().unwrap();
    let first = push(&msb, &["-i", layout, &format!("{}/team-a/big:1", proxy.addr())]);
    let patches = proxy.requests().iter().filter(|r| r.starts_with("PATCH ")).count();
    assert!(patches >= 2, "a 40 MiB layer goes in chunks: {:?}", proxy.requests());
    let second = push(&msb, &["-i", layout, &format!("{}/team-b/big:1", proxy.addr())]);
    assert!(statuses(&second[0]).iter().all(|s| s == "mounted"), "{second:?}");
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /v2/team-b/big/blobs/uploads/?mount=") && r.contains("from=team-a")),
        "{:?}",
        proxy.requests()
    );
    assert_eq!(first[0]["digest"], second[0]["digest"]);
    let fresh = Msb::new();
    fresh.ok(["pull", "-q", &format!("{}/team-b/big:1", registry.addr())]);
    fresh.ok(["check"]);
}

/// An OCI layout directory of one image with one uncompressed layer of
/// `size` zero bytes (python's tarfile).
fn big_layout(dir: &Path, size: usize) -> PathBuf {
    let out = dir.join("big-layout");
    let script = r#"
import hashlib, io, json, os, sys, tarfile
out, size = sys.argv[1], int(sys.argv[2])
os.makedirs(out + "/blobs/sha256")
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(out + "/blobs/sha256/" + d, "wb").write(b)
    return {"digest": "sha256:" + d, "size": len(b)}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    info = tarfile.TarInfo("data/zeros.bin"); info.size = size; info.mtime = 0
    t.addfile(info, io.BytesIO(bytes(size)))
layer = buf.getvalue()
ld = put(layer)
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld["digest"]]}}).encode()
cd = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cd),
    "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **ld)]}).encode()
md = put(manifest)
json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
    annotations={"org.opencontainers.image.ref.name": "big:1"}, **md)]}, open(out + "/index.json", "w"))
"#;
    common::run(std::process::Command::new("python3").args(["-c", script, out.to_str().unwrap(), &size.to_string()]));
    out
}

#[test]
fn an_index_with_two_platforms_round_trips() {
    let registry = Registry::plain();
    let msb = Msb::new();
    let multi = oci_fixtures().join("multi.tar");
    msb.ok(["load", "-q", "--all-platforms", "-i", multi.to_str().unwrap()]);
    let stored = msb.inspect("multi:1");
    let index_digest = stored["index_digest"].as_str().expect("an index").to_string();
    let dest = format!("{}/multi/x:1", registry.addr());
    let pushed = push(&msb, &["multi:1", &dest]);
    assert_eq!(pushed[0]["digest"], index_digest.as_str());
    let index: Value = serde_json::from_slice(&raw(&dest)).unwrap();
    assert_eq!(sha256(&raw(&dest)), index_digest);
    assert!(index["manifests"].as_array().unwrap().len() >= 2, "{index}");

    // Pulled back: every platform, the same index; or one platform.
    let fresh = Msb::new();
    fresh.ok(["pull", "-q", "--all-platforms", &dest]);
    assert_eq!(fresh.inspect(&dest)["index_digest"], index_digest.as_str());
    let arm = Msb::new();
    let (stdout, _) = arm.ok(["pull", "--format", "json", "--platform", "linux/arm64", &dest]);
    let pulled: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pulled[0]["platform"], "linux/arm64/v8");
    let error = arm.fails(["pull", "--platform", "linux/s390x", &dest]);
    assert!(error.contains("linux/s390x") && error.contains("linux/amd64"), "{error}");

    // Straight from the archive: the same index.
    let other = Msb::new();
    let pushed =
        push(&other, &["-i", multi.to_str().unwrap(), "--all-platforms", &format!("{}/multi/y:1", registry.addr())]);
    assert_eq!(pushed[0]["digest"], index_digest.as_str());
}

#[test]
fn tls_and_basic_auth_with_login_logout_and_clear_errors() {
    let registry = Registry::tls_with_auth("alice", "s3cret");
    let msb = Msb::new();
    let dir = scratch();
    let docker_config = dir.path().join("docker");
    let cert_dir = registry.cert_dir();
    let certs = cert_dir.to_str().unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = msb.cmd(args);
        cmd.env("DOCKER_CONFIG", &docker_config).env_remove("REGISTRY_AUTH_FILE");
        cmd
    };
    let archive = oci_fixtures().join("oci-archive.tar");
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    let dest = format!("{}/secure/alpine:1", registry.addr());

    // Without the CA: a TLS failure, named.
    let out = with_config(&["push", &"alpine:3.20".to_string(), &dest]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("TLS failure") && stderr.contains(registry.addr()), "{stderr}");
    // No credentials: unauthorized, with a hint.
    let out = with_config(&["push", "--cert-dir", certs, "alpine:3.20", &dest]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("unauthorized") && stderr.contains("msb login"), "{stderr}");
    // A wrong password is refused at login and nothing is kept.
    let mut login = with_config(&["login", "--cert-dir", certs, "-u", "alice", "--password-stdin", registry.addr()]);
    let out = feed(&mut login, "wrong\n");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unauthorized"), "{out:?}");
    assert!(!docker_config.join("config.json").exists());
    // The right one is checked, then kept in docker's config.
    let mut login = with_config(&["login", "--cert-dir", certs, "-u", "alice", "--password-stdin", registry.addr()]);
    let out = feed(&mut login, "s3cret\n");
    assert!(out.status.success(), "{out:?}");
    let config: Value = serde_json::from_slice(&std::fs::read(docker_config.join("config.json")).unwrap()).unwrap();
    assert!(config["auths"][registry.addr()]["auth"].is_string(), "{config}");

    let out = with_config(&["push", "-q", "--cert-dir", certs, "alpine:3.20", &dest]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = inspect(&format!("docker://{dest}"), &["--cert-dir", certs, "--creds", "alice:s3cret"]);
    assert_eq!(seen["Digest"], msb.inspect("alpine:3.20")["manifest_digest"]);
    let fresh = Msb::new();
    let out =
        fresh.cmd(["pull", "-q", "--cert-dir", certs, &dest]).env("DOCKER_CONFIG", &docker_config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // --authfile (containers auth.json) is read first.
    let authfile = dir.path().join("auth.json");
    std::fs::write(&authfile, format!(r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6d3Jvbmc="}}}}}}"#, registry.addr()))
        .unwrap();
    let out = with_config(&["pull", "-q", "--cert-dir", certs, "--authfile", authfile.to_str().unwrap(), &dest])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the credentials"), "{out:?}");

    // Missing image: not found, in one line.
    let out =
        with_config(&["pull", "--cert-dir", certs, &format!("{}/secure/nothing:1", registry.addr())]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found") && stderr.lines().count() == 1, "{stderr}");

    let out = with_config(&["logout", registry.addr()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Removed"), "{out:?}");
    let config: Value = serde_json::from_slice(&std::fs::read(docker_config.join("config.json")).unwrap()).unwrap();
    assert!(config["auths"].get(registry.addr()).is_none(), "{config}");
}

/// Runs `cmd` with `input` on stdin.
fn feed(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn dropped_connections_503s_and_cut_downloads_are_retried() {
    let registry = Registry::plain();
    let msb = Msb::new();
    let archive = common::fixtures("make-big.sh").join("big.tar");
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    let stored = msb.inspect("big:1");

    let flaky = Proxy::new(registry.addr()).drop_first(1).status_first(503, 2).start();
    let dest = format!("{}/flaky/big:1", flaky.addr());
    let pushed = push(&msb, &["big:1", &dest]);
    assert_eq!(pushed[0]["digest"], stored["manifest_digest"]);
    assert!(flaky.requests().len() > 3);

    // The first blob fetched (the config) breaks off after 100 bytes.
    let cut = Proxy::new(registry.addr()).cut_first_blob_get(100).start();
    let fresh = Msb::new();
    fresh.ok(["pull", "-q", &format!("{}/flaky/big:1", cut.addr())]);
    assert_eq!(layers_with_images(&fresh, &format!("{}/flaky/big:1", cut.addr())), layers_with_images(&msb, "big:1"));
    let gets =
        cut.requests().into_iter().filter(|r| r.starts_with("GET ") && r.contains("/blobs/")).collect::<Vec<_>>();
    let distinct = gets.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert!(gets.len() > distinct, "the cut download was resumed: {gets:?}");
}

#[test]
fn bearer_token_registries_anonymous_and_with_credentials() {
    let registry = Registry::plain();
    let anonymous = Proxy::new(registry.addr()).bearer(None).start();
    let msb = Msb::new();
    let archive = oci_fixtures().join("oci-archive.tar");
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    msb.ok(["push", "-q", "alpine:3.20", &format!("{}/open/alpine:1", anonymous.addr())]);
    let fresh = Msb::new();
    fresh.ok(["pull", "-q", &format!("{}/open/alpine:1", anonymous.addr())]);
    assert!(anonymous.tokens_issued() > 0);

    let guarded = Proxy::new(registry.addr()).bearer(Some(("bob", "pw"))).start();
    let dir = scratch();
    let error = msb.fails(["pull", &format!("{}/open/alpine:1", guarded.addr())]);
    assert!(error.contains("unauthorized"), "{error}");
    let authfile = dir.path().join("auth.json");
    let mut login =
        msb.cmd(["login", "--authfile", authfile.to_str().unwrap(), "-u", "bob", "--password-stdin", guarded.addr()]);
    assert!(feed(&mut login, "pw\n").status.success());
    let pulled = Msb::new();
    pulled.ok(["pull", "-q", "--authfile", authfile.to_str().unwrap(), &format!("{}/open/alpine:1", guarded.addr())]);
    assert_eq!(
        pulled.inspect(&format!("{}/open/alpine:1", guarded.addr()))["manifest_digest"],
        msb.inspect("alpine:3.20")["manifest_digest"]
    );
}

#[test]
fn credential_helpers_registry_auth_file_and_tls_verify_false() {
    let registry = Registry::tls_with_auth("carol", "pw2");
    let msb = Msb::new();
    let dir = scratch();
    // A credential helper keeping one login in a file, as docker's do.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-msbtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nstore=\"$(dirname \"$0\")/creds.json\"\ncase \"$1\" in\n  store) cat > \"$store\" ;;\n  \
         get) read server; [ -f \"$store\" ] && cat \"$store\" || { echo 'credentials not found in native keychain'; exit 1; } ;;\n  \
         erase) read server; rm -f \"$store\" ;;\nesac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker_config = dir.path().join("docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(docker_config.join("config.json"), r#"{"credsStore":"msbtest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let msb_with = |args: &[&str]| {
        let mut cmd = msb.cmd(args);
        cmd.env("DOCKER_CONFIG", &docker_config).env("PATH", &path).env_remove("REGISTRY_AUTH_FILE");
        cmd
    };
    // --tls-verify=false: no CA needed.
    let mut login = msb_with(&["login", "--tls-verify=false", "-u", "carol", "--password-stdin", registry.addr()]);
    let out = feed(&mut login, "pw2\n");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("docker-credential-msbtest"), "{out:?}");
    let config = std::fs::read_to_string(docker_config.join("config.json")).unwrap();
    assert!(!config.contains("auths"), "the helper keeps the secret, not config.json: {config}");
    let archive = oci_fixtures().join("oci-archive.tar");
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    let dest = format!("{}/helped/alpine:1", registry.addr());
    let out = msb_with(&["push", "-q", "--tls-verify=false", "alpine:3.20", &dest]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = msb_with(&["logout", registry.addr()]).output().unwrap();
    assert!(out.status.success() && !bin.join("creds.json").exists(), "{out:?}");

    // $REGISTRY_AUTH_FILE (containers auth.json) is read before docker's config.
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, format!(r#"{{"auths":{{"{}":{{"auth":"Y2Fyb2w6cHcy"}}}}}}"#, registry.addr())).unwrap();
    let fresh = Msb::new();
    let certs = registry.cert_dir();
    let out = fresh
        .cmd(["pull", "-q", "--cert-dir", certs.to_str().unwrap(), &dest])
        .env("REGISTRY_AUTH_FILE", &auth)
        .env("DOCKER_CONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fresh.inspect(&dest)["manifest_digest"], msb.inspect("alpine:3.20")["manifest_digest"]);
}
