//! The store's promises under interruption and damage: loads killed at any
//! point leave a store whose every ref checks clean and a `tmp/` the next
//! command empties; SIGINT and SIGTERM clean up before exiting; `msb check`
//! finds each kind of damage and `--repair` removes it with the refs that
//! needed it.

mod common;

use common::{Msb, fixtures, texts};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The archives of `tests/fixtures/make-big.sh`.
fn big() -> PathBuf {
    fixtures("make-big.sh")
}

/// Everything under `tmp/` (paths relative to it).
fn tmp_entries(msb: &Msb) -> Vec<String> {
    let tmp = msb.home().join("tmp");
    let mut found = Vec::new();
    let mut stack = vec![tmp.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(&tmp).expect("under tmp").display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `msb check` passes and prints its one-line summary.
fn check_clean(msb: &Msb) {
    let (stdout, _) = msb.ok(["check"]);
    assert!(stdout.starts_with("ok: ") && stdout.lines().count() == 1, "{stdout}");
}

/// A small deterministic generator, seeded from the clock (the seed is printed).
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        eprintln!("random seed {seed}");
        Random(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// `msb load -q -i ARCHIVE`, which must succeed.
fn load(msb: &Msb, archive: &Path) {
    let out = msb.cmd(["load", "-q", "-i"]).arg(archive).output().expect("run msb");
    assert!(out.status.success(), "load {}: {}", archive.display(), texts(&out).1);
}

fn spawn_load(msb: &Msb, archive: &Path) -> Child {
    msb.cmd(["load", "-q", "-i"]).arg(archive).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn msb")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

#[test]
fn loads_killed_at_any_point_leave_a_sound_store_and_nothing_in_tmp() {
    let dir = big();
    let archives = [dir.join("big.tar"), dir.join("big.tar.gz"), dir.join("docker.tar")];
    // How long a whole load of each archive takes, into an empty store and
    // into one that has the layers, to spread the kills over it.
    let mut spans = Vec::new();
    for archive in &archives {
        let timing = Msb::new();
        let mut span = [0; 2];
        for warm in span.iter_mut() {
            let start = Instant::now();
            load(&timing, archive);
            *warm = (start.elapsed().as_millis() as u64).max(20);
        }
        spans.push(span);
    }

    let msb = Msb::new();
    let mut random = Random::new();
    let mut completed = 0;
    for round in 0..20 {
        let which = round % archives.len();
        let archive = &archives[which];
        // Rounds 0-9 load into a store without the image's layers, rounds
        // 10-19 into one that has them.
        let warm = round >= 10;
        if round == 10 {
            load(&msb, archive);
        }
        let mut child = spawn_load(&msb, archive);
        std::thread::sleep(Duration::from_millis(random.below(spans[which][warm as usize])));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        check_clean(&msb);
        assert_eq!(tmp_entries(&msb), Vec::<String>::new(), "round {round}: tmp/ after the next command");
        let (images, _) = msb.ok(["images", "--format", "json"]);
        let images: serde_json::Value = serde_json::from_str(&images).expect("images prints JSON");
        for image in images.as_array().expect("a list") {
            let name = image["ref"].as_str().or(image["config_digest"].as_str()).expect("a ref or an ID");
            msb.inspect(name);
        }
        if status.success() {
            completed += 1;
            if !warm {
                // Back to a store without the layers for the next cold round.
                for image in images.as_array().expect("a list") {
                    let name = image["ref"].as_str().or(image["config_digest"].as_str()).expect("a ref or an ID");
                    let _ = msb.cmd(["rmi", "--force", name]).output();
                }
                assert_eq!(msb.ok(["images", "--format", "json"]).0.trim(), "[]", "round {round}: rmi left images");
            }
        }
    }
    eprintln!("{completed} of 20 loads finished before their kill");
    assert!(completed <= 15, "only {} of 20 loads were killed part way", 20 - completed);
    // What the killed loads left is garbage at most; gc takes it, the refs stay sound.
    msb.ok(["gc"]);
    check_clean(&msb);
    msb.inspect("big:1");
}

#[test]
fn gc_and_other_commands_never_remove_a_live_load_s_staging() {
    let dir = big();
    let msb = Msb::new();
    for archive in ["big.tar.gz", "docker.tar"] {
        let mut load = spawn_load(&msb, &dir.join(archive));
        let mut runs = 0;
        while load.try_wait().expect("try_wait").is_none() {
            msb.ok(["gc"]);
            runs += 1;
        }
        let out = load.wait_with_output().expect("wait");
        assert!(out.status.success(), "load beside gc failed: {}", texts(&out).1);
        assert!(runs > 0, "gc never ran while the load did");
    }
    check_clean(&msb);
    assert_eq!(tmp_entries(&msb), Vec::<String>::new());
}

/// Starts a load, waits until it has staged files, sends `name`, and checks
/// the exit code and that `tmp/` is empty at once.
fn interrupt(name: &str, code: i32) {
    let dir = big();
    let msb = Msb::new();
    let mut load = spawn_load(&msb, &dir.join("big.tar.gz"));
    let deadline = Instant::now() + Duration::from_secs(60);
    // The spool (the archive is gzipped) or the staging dir has bytes in it.
    while !tmp_entries(&msb).iter().any(|e| e.contains("/spool-") || e.contains("/stage-")) {
        assert!(load.try_wait().expect("try_wait").is_none(), "the load ended before it staged anything");
        assert!(Instant::now() < deadline, "the load staged nothing in a minute");
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&load, name);
    let out = load.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(code), "after SIG{name}: {}", texts(&out).1);
    assert_eq!(tmp_entries(&msb), Vec::<String>::new(), "tmp/ right after SIG{name}");
    check_clean(&msb);
}

#[test]
fn sigterm_removes_the_load_s_staging_and_exits_143() {
    interrupt("TERM", 143);
}

#[test]
fn sigint_removes_the_load_s_staging_and_exits_130() {
    interrupt("INT", 130);
}

/// A store with `alpine:3.20` (from the OCI fixtures) and `big:1`.
fn loaded() -> (Msb, serde_json::Value, serde_json::Value) {
    let msb = Msb::new();
    load(&msb, &common::oci_fixtures().join("oci-archive.tar"));
    load(&msb, &big().join("big.tar"));
    check_clean(&msb);
    let alpine = msb.inspect("alpine:3.20");
    let big = msb.inspect("big:1");
    (msb, alpine, big)
}

fn blob(msb: &Msb, digest: &serde_json::Value) -> PathBuf {
    let digest = digest.as_str().expect("a digest");
    msb.home().join("oci/blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn record(msb: &Msb, digest: &serde_json::Value) -> PathBuf {
    let digest = digest.as_str().expect("a digest");
    msb.home().join("records/sha256").join(format!("{}.json", digest.trim_start_matches("sha256:")))
}

fn erofs(layer: &serde_json::Value) -> PathBuf {
    PathBuf::from(layer["erofs"].as_str().expect("an erofs path"))
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = (offset as usize).min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

/// Damages the alpine image with `damage`, then: `msb check` names
/// `expect_path` with `expect` and fails; `--repair` removes alpine's ref
/// (and `removed`, if given) but keeps big:1; a second check is clean.
fn damaged(
    what: &str,
    damage: impl FnOnce(&Msb, &serde_json::Value),
    expect: &str,
    path: impl Fn(&Msb, &serde_json::Value) -> PathBuf,
    removed: Option<bool>,
) {
    let (msb, alpine, _) = loaded();
    damage(&msb, &alpine);
    let expect_path = path(&msb, &alpine);
    let out = msb.cmd(["check"]).output().expect("run msb");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{what}: check passed:\n{stdout}{stderr}");
    let line = format!("{}: ", expect_path.display());
    assert!(
        stdout.lines().any(|l| l.starts_with(&line) && l.contains(expect)),
        "{what}: no line `{line}…{expect}…` in:\n{stdout}"
    );
    assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{stderr}");
    let json = msb.cmd(["check", "--format", "json"]).output().expect("run msb");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("check prints JSON");
    assert_eq!(report["ok"], false, "{what}");
    assert!(report["problems"].as_array().is_some_and(|p| !p.is_empty()), "{what}: {report}");

    let out = msb.cmd(["check", "--repair"]).output().expect("run msb");
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{what}: repair reports the problems it found");
    assert!(stdout.contains("removed ref docker.io/library/alpine:3.20"), "{what}:\n{stdout}");
    if removed == Some(true) {
        assert!(stdout.contains(&format!("removed {}", expect_path.display())), "{what}:\n{stdout}");
        assert!(!expect_path.exists(), "{what}: {} is still there", expect_path.display());
    }
    check_clean(&msb);
    let (images, _) = msb.ok(["images"]);
    assert!(images.contains("big") && !images.contains("alpine"), "{what}:\n{images}");
    msb.inspect("big:1");
    // The image loads again over what the repair left.
    load(&msb, &common::oci_fixtures().join("oci-archive.tar"));
    check_clean(&msb);
}

#[test]
fn a_corrupt_blob_is_found_and_removed_with_its_refs() {
    damaged(
        "corrupt layer blob",
        |msb, alpine| flip_byte(&blob(msb, &alpine["layers"][0]["digest"]), 100),
        "content has digest sha256:",
        |msb, alpine| blob(msb, &alpine["layers"][0]["digest"]),
        Some(true),
    );
    damaged(
        "corrupt config",
        |msb, alpine| flip_byte(&blob(msb, &alpine["config_digest"]), 10),
        "content has digest sha256:",
        |msb, alpine| blob(msb, &alpine["config_digest"]),
        Some(true),
    );
}

#[test]
fn a_damaged_or_missing_erofs_layer_is_found_and_removed_with_its_refs() {
    damaged(
        "flipped EROFS superblock byte",
        |_, alpine| flip_byte(&erofs(&alpine["layers"][1]), 1024),
        "not a sound EROFS image",
        |_, alpine| erofs(&alpine["layers"][1]),
        Some(true),
    );
    damaged(
        "flipped byte in the root inode's mode",
        |_, alpine| {
            let path = erofs(&alpine["layers"][1]);
            let image = std::fs::read(&path).expect("read");
            let sb = &image[1024..1024 + 128];
            let block = 1u64 << sb[12];
            let root_nid = u16::from_le_bytes([sb[14], sb[15]]) as u64;
            let meta = u32::from_le_bytes([sb[40], sb[41], sb[42], sb[43]]) as u64;
            // i_mode is at byte 4 of an inode; its high byte holds the file type.
            flip_byte(&path, meta * block + root_nid * 32 + 5);
        },
        "not a sound EROFS image",
        |_, alpine| erofs(&alpine["layers"][1]),
        Some(true),
    );
    damaged(
        "truncated EROFS image",
        |_, alpine| {
            let path = erofs(&alpine["layers"][0]);
            let len = std::fs::metadata(&path).expect("stat").len();
            std::fs::File::options().write(true).open(&path).and_then(|f| f.set_len(len / 2)).expect("truncate");
        },
        "not a sound EROFS image",
        |_, alpine| erofs(&alpine["layers"][0]),
        Some(true),
    );
    damaged(
        "deleted EROFS image",
        |_, alpine| std::fs::remove_file(erofs(&alpine["layers"][0])).expect("rm"),
        "missing; config sha256:",
        |_, alpine| erofs(&alpine["layers"][0]),
        None,
    );
}

#[test]
fn broken_refs_and_records_are_found_and_removed() {
    damaged(
        "deleted manifest",
        |msb, alpine| std::fs::remove_file(blob(msb, &alpine["manifest_digest"])).expect("rm"),
        "missing; docker.io/library/alpine:3.20 (index.json) needs it",
        |msb, alpine| blob(msb, &alpine["manifest_digest"]),
        None,
    );
    damaged(
        "wrong size in index.json",
        |msb, _| {
            let path = msb.home().join("oci/index.json");
            let mut index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("index.json parses");
            for d in index["manifests"].as_array_mut().expect("manifests") {
                if d["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/alpine:3.20" {
                    d["size"] = serde_json::json!(d["size"].as_u64().expect("size") + 1);
                }
            }
            std::fs::write(&path, serde_json::to_vec(&index).expect("json")).expect("write");
        },
        "bytes; docker.io/library/alpine:3.20 (index.json) says",
        |msb, alpine| blob(msb, &alpine["manifest_digest"]),
        None,
    );
    damaged(
        "record naming another diff_id",
        |msb, alpine| {
            let other = &alpine["layers"][1]["diff_id"];
            let size = alpine["layers"][0]["size"].as_u64().expect("size");
            let text = serde_json::json!({"diff_id": other, "size": size}).to_string();
            std::fs::write(record(msb, &alpine["layers"][0]["digest"]), text).expect("write");
        },
        "says diff_id",
        |msb, alpine| record(msb, &alpine["layers"][0]["digest"]),
        Some(true),
    );
    // A layer blob without its record (as in a store upgraded from format
    // version 1): found; the repair verifies the blob again and records it.
    let (msb, alpine, _) = loaded();
    let path = record(&msb, &alpine["layers"][1]["digest"]);
    let recorded = std::fs::read(&path).expect("read record");
    std::fs::remove_file(&path).expect("rm");
    let out = msb.cmd(["check"]).output().expect("run msb");
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = format!("{}: missing: nothing says the blob's diff_id is sha256:", path.display());
    assert!(stdout.starts_with(&line) && stdout.lines().count() == 1, "{stdout}");
    let (stdout, _) = texts(&msb.cmd(["check", "--repair"]).output().expect("run msb"));
    assert!(stdout.contains(&format!("recorded {}", path.display())), "{stdout}");
    assert!(!stdout.contains("removed"), "{stdout}");
    assert_eq!(std::fs::read(&path).expect("read record"), recorded);
    check_clean(&msb);
    msb.inspect("alpine:3.20");

    // An index.json entry that is no descriptor, and one naming a blob the
    // store never had: both found, both dropped, the rest kept.
    let (msb, _, _) = loaded();
    let path = msb.home().join("oci/index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parses");
    let missing = format!("sha256:{}", "ab".repeat(32));
    let manifests = index["manifests"].as_array_mut().expect("manifests");
    manifests.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 3}));
    manifests.push(
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing, "size": 3,
        "annotations": {"org.opencontainers.image.ref.name": "docker.io/library/ghost:1"}}),
    );
    std::fs::write(&path, serde_json::to_vec(&index).expect("json")).expect("write");
    let out = msb.cmd(["check"]).output().expect("run msb");
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{}: entry #", path.display())), "{stdout}");
    assert!(stdout.contains("missing; docker.io/library/ghost:1 (index.json) needs it"), "{stdout}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (stdout, _) = texts(&msb.cmd(["check", "--repair"]).output().expect("run msb"));
    assert!(stdout.contains("removed ref docker.io/library/ghost:1"), "{stdout}");
    check_clean(&msb);
    msb.inspect("alpine:3.20");
    msb.inspect("big:1");
}
