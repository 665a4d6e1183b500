use super::*;
use msb_plugin_sdk::MemArchive;
use msb_plugin_sdk::oci::{MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_MANIFEST};

/// `sha256:<hex>` of `bytes`.
fn sha(bytes: &str) -> String {
    MemArchive::new([("x", bytes)]).digest("x", false).unwrap()
}

fn hex(bytes: &str) -> String {
    sha(bytes)[7..].to_string()
}

fn config(layers: &[&str]) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("{:?}", sha(l))).collect();
    format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
}

fn entry_path(blob: &Blob) -> &str {
    match &blob.source {
        Source::Entry(path) => path,
        other => panic!("expected an entry, got {other:?}"),
    }
}

/// A classic `docker save` of `alpine:3.20` (layers `l1`, `l2`) and an
/// untagged image reusing `l1` through a symlink (layers `l1`, `l3`).
fn classic() -> (MemArchive, String, String) {
    let (c1, c2) = (config(&["one", "two"]), config(&["one", "three"]));
    let manifest = format!(
        r#"[{{"Config":"{}.json","RepoTags":["alpine:3.20"],"Layers":["l1/layer.tar","l2/layer.tar"]}},
            {{"Config":"{}.json","RepoTags":null,"Layers":["l4/layer.tar","l3/layer.tar"]}}]"#,
        hex(&c1),
        hex(&c2)
    );
    let mut archive = MemArchive::new([
        ("manifest.json".to_string(), manifest),
        (format!("{}.json", hex(&c1)), c1.clone()),
        (format!("{}.json", hex(&c2)), c2.clone()),
        ("l1/layer.tar".into(), "one".into()),
        ("l2/layer.tar".into(), "two".into()),
        ("l3/layer.tar".into(), "three".into()),
        ("repositories".into(), r#"{"alpine":{"3.20":"l2"}}"#.into()),
    ]);
    archive.add_symlink("l4/layer.tar", "../l1/layer.tar");
    (archive, c1, c2)
}

#[test]
fn classic_archive_with_a_tagged_and_an_untagged_image() {
    let (archive, c1, c2) = classic();
    assert_eq!(DockerSave::detect(&archive), 100);
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images.len(), 2);

    let alpine = &images[0];
    assert_eq!(alpine.refs, ["alpine:3.20"]);
    assert!(alpine.manifest.is_none() && alpine.platform.is_none() && alpine.indexes.is_empty());
    assert_eq!(alpine.config.digest, None, "a <hex>.json name is no claim: the host hashes the bytes");
    assert_eq!(alpine.config.media_type.as_deref(), Some(MEDIA_TYPE_DOCKER_CONFIG));
    assert_eq!(entry_path(&alpine.config), format!("{}.json", hex(&c1)));
    let paths: Vec<&str> = alpine.layers.iter().map(|l| entry_path(&l.blob)).collect();
    assert_eq!(paths, ["l1/layer.tar", "l2/layer.tar"]);
    for (layer, content) in alpine.layers.iter().zip(["one", "two"]) {
        assert_eq!((layer.blob.digest.as_deref(), layer.blob.media_type.as_deref()), (None, None));
        assert_eq!(layer.diff_id.as_deref(), Some(sha(content).as_str()));
    }

    let untagged = &images[1];
    assert!(untagged.refs.is_empty(), "loaded by ID: {:?}", untagged.refs);
    assert_eq!(untagged.config.digest, None);
    assert_eq!(entry_path(&untagged.config), format!("{}.json", hex(&c2)));
    // The symlinked duplicate is read from the first copy.
    assert_eq!(entry_path(&untagged.layers[0].blob), "l1/layer.tar");
}

#[test]
fn repositories_names_only_untagged_images() {
    let (mut archive, _, c2) = classic();
    let manifest = format!(r#"[{{"Config":"{}.json","Layers":["l4/layer.tar","l3/layer.tar"]}}]"#, hex(&c2));
    archive.remove("manifest.json").add("manifest.json", manifest.as_bytes());
    archive.remove("repositories").add("repositories", br#"{"old":{"v1":"l3","v2":"l3"},"other":{"x":"l2"}}"#);
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images[0].refs, ["old:v1", "old:v2"]);
}

#[test]
fn missing_layer_names_it() {
    let c = config(&["one"]);
    let archive = MemArchive::new([
        (
            "manifest.json".to_string(),
            r#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["abc/layer.tar"]}]"#.to_string(),
        ),
        ("c.json".to_string(), c),
    ]);
    let err = DockerSave::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Missing, Some("manifest.json")));
    assert_eq!(err.message, r#"layer "abc/layer.tar" is not in the archive"#);

    let mut archive = MemArchive::new([("manifest.json", r#"[{"Config":"c.json","Layers":["l/layer.tar"]}]"#)]);
    archive.add_symlink("l/layer.tar", "../gone/layer.tar");
    archive.add("c.json", config(&["one"]).as_bytes());
    let err = DockerSave::decode(&archive).unwrap_err();
    assert_eq!(err.message, r#"layer "l/layer.tar" is not in the archive"#, "a dangling link is missing too");
}

#[test]
fn diff_id_count_must_match() {
    let archive = MemArchive::new([
        ("manifest.json", r#"[{"Config":"c.json","Layers":["l/layer.tar"]}]"#.to_string()),
        ("c.json", config(&["one", "two"])),
        ("l/layer.tar", "one".into()),
    ]);
    let err = DockerSave::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Malformed, Some("c.json")));
    // Only an OCI blob path declares a digest.
    assert!(blob_digest("c.json").is_none());
    assert!(blob_digest(&format!("{}.json", hex("x"))).is_none());
    assert_eq!(blob_digest(&format!("./blobs/sha256/{}", hex("x"))).map(|d| d.to_string()), Some(sha("x")));
}

#[test]
fn detects_only_docker_manifests() {
    assert_eq!(DockerSave::detect(&MemArchive::new([("manifest.json", "[]")])), 0);
    assert_eq!(DockerSave::detect(&MemArchive::new([("manifest.json", r#"{"schemaVersion":2}"#)])), 0);
    assert_eq!(DockerSave::detect(&MemArchive::new([("index.json", "{}")])), 0);
}

/// A docker 25 archive: one image under `alpine:3.20` and `mine:1`, in an
/// OCI layout and in `manifest.json`. `tags` are the `RepoTags`; `layers`
/// what `manifest.json` lists.
fn docker25(annotations: &[&str], tags: &str, layers: &str) -> (MemArchive, String) {
    let c = config(&["one"]);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","config":{{"mediaType":"{MEDIA_TYPE_OCI_CONFIG}","digest":"{}","size":1}},"layers":[{{"mediaType":"{MEDIA_TYPE_OCI_LAYER}","digest":"{}","size":3}}]}}"#,
        sha(&c),
        sha("one")
    );
    let entries: Vec<String> = annotations
        .iter()
        .map(|a| {
            format!(
                r#"{{"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","digest":"{}","size":1,"annotations":{a}}}"#,
                sha(&manifest)
            )
        })
        .collect();
    let index = format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, entries.join(","));
    let archive = MemArchive::new([
        ("blobs/sha256/".to_string() + &hex(&c), c.clone()),
        ("blobs/sha256/".to_string() + &hex("one"), "one".into()),
        ("blobs/sha256/".to_string() + &hex(&manifest), manifest.clone()),
        ("index.json".into(), index),
        (
            "manifest.json".into(),
            format!(r#"[{{"Config":"blobs/sha256/{}","RepoTags":{tags},"Layers":{layers}}}]"#, hex(&c)),
        ),
        ("oci-layout".into(), r#"{"imageLayoutVersion":"1.0.0"}"#.into()),
        ("repositories".into(), "{}".into()),
    ]);
    (archive, sha(&manifest))
}

const ALPINE: &str =
    r#"{"io.containerd.image.name":"docker.io/library/alpine:3.20","org.opencontainers.image.ref.name":"3.20"}"#;
const MINE: &str = r#"{"io.containerd.image.name":"docker.io/library/mine:1","org.opencontainers.image.ref.name":"1"}"#;

fn one_layer() -> String {
    format!(r#"["blobs/sha256/{}"]"#, hex("one"))
}

#[test]
fn docker25_prefers_the_index_and_merges_refs() {
    let (archive, manifest) = docker25(&[ALPINE, MINE], r#"["alpine:3.20","mine:1"]"#, &one_layer());
    assert_eq!(DockerSave::detect(&archive), 95);
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images.len(), 1, "one image under two refs");
    let image = &images[0];
    assert_eq!(image.refs, ["alpine:3.20", "mine:1", "docker.io/library/alpine:3.20", "docker.io/library/mine:1"]);
    assert_eq!(image.manifest.as_ref().unwrap().digest.as_deref(), Some(manifest.as_str()));
    assert_eq!(image.layers[0].blob.digest.as_deref(), Some(sha("one").as_str()));
}

#[test]
fn docker25_bare_tags_give_way_to_repo_tags() {
    let (archive, _) =
        docker25(&[r#"{"org.opencontainers.image.ref.name":"3.20"}"#], r#"["alpine:3.20"]"#, &one_layer());
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images[0].refs, ["alpine:3.20"]);

    // Saved by ID: no tags anywhere.
    let (archive, _) = docker25(&["{}"], "null", &one_layer());
    assert!(DockerSave::decode(&archive).unwrap()[0].refs.is_empty());
}

#[test]
fn docker25_manifest_json_overrules_a_disagreeing_index() {
    // manifest.json lists other layers than the index's manifest: its image
    // is loaded as it says (the host then verifies the layer's declared digest).
    let other = format!("blobs/sha256/{}", hex("two"));
    let (mut archive, _) = docker25(&[ALPINE], r#"["alpine:3.20"]"#, &format!(r#"["{other}"]"#));
    archive.add(&other, b"two");
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images.len(), 1, "the index's own image is not loaded: {images:?}");
    assert_eq!(images[0].refs, ["alpine:3.20"]);
    assert!(images[0].manifest.is_none(), "built from manifest.json");
    assert_eq!(images[0].layers[0].blob.digest.as_deref(), Some(sha("two").as_str()));

    // manifest.json's image has another config than anything in the index.
    let (mut archive, _) = docker25(&[ALPINE], "null", &one_layer());
    let c = config(&["two"]);
    archive.add(&format!("blobs/sha256/{}", hex(&c)), c.as_bytes());
    let manifest = format!(r#"[{{"Config":"blobs/sha256/{}","Layers":[]}}]"#, hex(&c));
    archive.remove("manifest.json").add("manifest.json", manifest.as_bytes());
    let err = DockerSave::decode(&archive).unwrap_err();
    assert!(err.message.contains("lists 1 diff_ids for the 0 layers"), "manifest.json's image is read: {err:?}");
}

#[test]
fn docker25_index_absent_empty_or_null_reads_manifest_json() {
    for index in [None, Some("{}"), Some(r#"{"schemaVersion":2,"manifests":null}"#), Some("")] {
        let (mut archive, _) = docker25(&[ALPINE], r#"["alpine:3.20"]"#, &one_layer());
        archive.remove("index.json");
        if let Some(index) = index {
            archive.add("index.json", index.as_bytes());
        }
        let images = DockerSave::decode(&archive).unwrap_or_else(|e| panic!("{index:?}: {e}"));
        assert_eq!(images.len(), 1, "{index:?}");
        assert_eq!(images[0].refs, ["alpine:3.20"], "{index:?}");
        assert!(images[0].manifest.is_none(), "{index:?}");
        assert_eq!(images[0].config.digest.as_deref(), Some(sha(&config(&["one"])).as_str()), "a blob path is a claim");
    }
}

#[test]
fn a_config_name_is_a_path_not_a_digest() {
    // A classic archive whose config was edited after saving: its name no
    // longer is its digest. It loads; the host computes the image ID.
    let (mut archive, c1, _) = classic();
    let name = format!("{}.json", hex(&c1));
    let edited = c1.replace("amd64", "arm64");
    archive.remove(&name).add(&name, edited.as_bytes());
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images[0].config.digest, None, "left to the host to compute");
    assert_eq!(entry_path(&images[0].config), name);

    // Also next to an index (a docker 25+ archive edited by hand).
    let (mut archive, _) = docker25(&[ALPINE], r#"["alpine:3.20"]"#, &one_layer());
    let c = config(&["one"]);
    let wrong = format!("{}.json", hex("not the config"));
    archive.add(&wrong, c.as_bytes());
    let manifest = format!(r#"[{{"Config":"{wrong}","RepoTags":["alpine:3.20"],"Layers":{}}}]"#, one_layer());
    archive.remove("manifest.json").add("manifest.json", manifest.as_bytes());
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert!(images[0].manifest.is_some(), "same bytes as the index's config: the index's image");
}

#[test]
fn docker25_with_an_incomplete_index_reads_manifest_json() {
    let (mut archive, _) = docker25(&[ALPINE], r#"["alpine:3.20"]"#, &one_layer());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{}","size":1}}]}}"#,
        sha("absent")
    );
    archive.remove("index.json").add("index.json", index.as_bytes());
    let images = DockerSave::decode(&archive).unwrap();
    assert_eq!(images[0].refs, ["alpine:3.20"]);
    assert!(images[0].manifest.is_none());
    assert_eq!(images[0].layers[0].blob.digest.as_deref(), Some(sha("one").as_str()), "named by its digest");
}
