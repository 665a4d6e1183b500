use super::*;
use msb_plugin_sdk::oci::{
    MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_LAYER_GZIP,
};
use msb_plugin_sdk::{ErrorKind, MemArchive};

const VERSION_1_1: &str = "Directory Transport Version: 1.1\n";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// `sha256:<hex>` of `bytes`.
fn sha(bytes: &str) -> String {
    MemArchive::new([("x", bytes)]).digest("x", false).unwrap()
}

fn hex(bytes: &str) -> String {
    sha(bytes)[7..].to_string()
}

const CONFIG: &str =
    r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1","sha256:2"]}}"#;

/// A manifest of `CONFIG` and the layers `one`, `two`; `media_type` is the
/// manifest's own (`None`: the field is absent, as skopeo writes OCI ones).
fn manifest(media_type: Option<&str>, config_type: &str, layer_type: &str) -> String {
    let field = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,{field}"config":{{"mediaType":"{config_type}","digest":"{}","size":1}},"layers":[{{"mediaType":"{layer_type}","digest":"{}","size":3}},{{"mediaType":"{layer_type}","digest":"{}","size":3}}]}}"#,
        sha(CONFIG),
        sha("one"),
        sha("two")
    )
}

/// A `dir:` directory holding `manifest` and every blob.
fn dir(manifest: &str) -> MemArchive {
    MemArchive::new([
        (hex(CONFIG), CONFIG.to_string()),
        (hex("one"), "one".into()),
        (hex("two"), "two".into()),
        ("manifest.json".into(), manifest.to_string()),
        ("version".into(), VERSION_1_1.into()),
        ("signature-1".into(), "ignored".into()),
    ])
}

fn entry_path(blob: &Blob) -> &str {
    match &blob.source {
        Source::Entry(path) => path,
        other => panic!("expected an entry, got {other:?}"),
    }
}

#[test]
fn skopeo_oci_manifest_without_media_type() {
    let archive = dir(&manifest(None, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER_GZIP));
    assert_eq!(ContainersDir::detect(&archive), 100);
    let images = ContainersDir::decode(&archive).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert!(image.refs.is_empty() && image.platform.is_none() && image.indexes.is_empty());

    let manifest = image.manifest.as_ref().unwrap();
    assert_eq!(entry_path(manifest), "manifest.json");
    assert_eq!(manifest.digest, None, "the host hashes the manifest");
    assert_eq!(manifest.media_type.as_deref(), Some(MEDIA_TYPE_OCI_MANIFEST));

    assert_eq!(entry_path(&image.config), hex(CONFIG));
    assert_eq!(image.config.digest.as_deref(), Some(sha(CONFIG).as_str()));
    assert_eq!(image.config.media_type.as_deref(), Some(MEDIA_TYPE_OCI_CONFIG));
    for (layer, content) in image.layers.iter().zip(["one", "two"]) {
        assert_eq!(entry_path(&layer.blob), hex(content));
        assert_eq!(layer.blob.digest.as_deref(), Some(sha(content).as_str()));
        assert_eq!(layer.blob.media_type.as_deref(), Some(MEDIA_TYPE_OCI_LAYER_GZIP));
        assert_eq!(layer.diff_id, None);
    }
    assert_eq!(image.layers.len(), 2);
}

#[test]
fn podman_docker_dir_keeps_docker_media_types() {
    let mut archive = dir(&manifest(Some(MEDIA_TYPE_DOCKER_MANIFEST), MEDIA_TYPE_DOCKER_CONFIG, DOCKER_LAYER_GZIP));
    archive.remove("version").add("version", b"Directory Transport Version: 1.0\n");
    assert_eq!(ContainersDir::detect(&archive), 100);
    let image = &ContainersDir::decode(&archive).unwrap()[0];
    assert_eq!(image.manifest.as_ref().unwrap().media_type.as_deref(), Some(MEDIA_TYPE_DOCKER_MANIFEST));
    assert_eq!(image.config.media_type.as_deref(), Some(MEDIA_TYPE_DOCKER_CONFIG));
    assert_eq!(image.layers[1].blob.media_type.as_deref(), Some(DOCKER_LAYER_GZIP));
}

#[test]
fn old_tar_suffixed_blobs_and_links() {
    let m = manifest(None, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER);
    let mut archive = MemArchive::new([
        ("manifest.json".to_string(), m),
        (format!("{}.tar", hex(CONFIG)), CONFIG.to_string()),
        (format!("{}.tar", hex("one")), "one".into()),
    ]);
    archive.add_symlink(&hex("two"), &format!("{}.tar", hex("one")));
    assert_eq!(ContainersDir::detect(&archive), 0, "no version file: only with --plugin");
    let image = &ContainersDir::decode(&archive).unwrap()[0];
    assert_eq!(entry_path(&image.config), format!("{}.tar", hex(CONFIG)));
    assert_eq!(entry_path(&image.layers[1].blob), format!("{}.tar", hex("one")), "links are followed");
}

#[test]
fn missing_blob_names_it() {
    let mut archive = dir(&manifest(None, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER));
    archive.remove(&hex("two"));
    let err = ContainersDir::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Missing, Some(hex("two").as_str())));
    assert_eq!(err.message, format!("layer 2 {} of manifest.json is not in the directory", sha("two")));

    archive.remove(&hex(CONFIG));
    let err = ContainersDir::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Missing, Some(hex(CONFIG).as_str())));
}

#[test]
fn an_index_is_detected_and_refused() {
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_OCI_INDEX}","manifests":[{{"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","digest":"{}","size":1}}]}}"#,
        sha("m")
    );
    let archive = dir(&index);
    assert_eq!(ContainersDir::detect(&archive), 100);
    let err = ContainersDir::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Unsupported, Some("manifest.json")));
    assert!(err.message.contains("skopeo copy --all"), "{err:?}");

    // A docker manifest list without a media type field is refused too.
    let archive = dir(r#"{"schemaVersion":2,"manifests":[]}"#);
    assert_eq!(ContainersDir::decode(&archive).unwrap_err().kind, ErrorKind::Unsupported);
}

#[test]
fn bad_manifests_and_versions() {
    let schema1 = dir(r#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}"#);
    assert_eq!(ContainersDir::detect(&schema1), 0);
    assert_eq!(ContainersDir::decode(&schema1).unwrap_err().kind, ErrorKind::Unsupported);

    let other = dir(&manifest(Some("application/vnd.example+json"), MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER));
    assert_eq!(ContainersDir::decode(&other).unwrap_err().kind, ErrorKind::Unsupported);

    let m = manifest(None, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER);
    let sha512 = dir(&m.replace(&sha("one"), &format!("sha512:{}", "a".repeat(128))));
    let err = ContainersDir::decode(&sha512).unwrap_err();
    assert!(err.kind == ErrorKind::Unsupported && err.message.contains("only sha256"), "{err:?}");
    let escape = dir(&m.replace(&sha("one"), "sha256:../../etc/passwd"));
    assert_eq!(ContainersDir::decode(&escape).unwrap_err().kind, ErrorKind::Malformed);

    let no_config = dir(r#"{"schemaVersion":2,"layers":[]}"#);
    assert_eq!(ContainersDir::detect(&no_config), 0);
    assert_eq!(ContainersDir::decode(&no_config).unwrap_err().kind, ErrorKind::Malformed);

    let mut future = dir(&m);
    future.remove("version").add("version", b"Directory Transport Version: 2.0\n");
    assert_eq!(ContainersDir::detect(&future), 100);
    let err = ContainersDir::decode(&future).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Unsupported, Some("version")));
}

#[test]
fn detects_only_this_transport() {
    let m = manifest(None, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER);
    let mut archive = dir(&m);
    archive.remove("version").add("version", b"1.1\n");
    assert_eq!(ContainersDir::detect(&archive), 0, "another version file");
    archive.remove("version");
    assert_eq!(ContainersDir::detect(&archive), 0, "no version file");
    // docker save's manifest.json is an array.
    let docker_save = dir(r#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":[]}]"#);
    assert_eq!(ContainersDir::detect(&docker_save), 0);
    assert_eq!(ContainersDir::detect(&dir("not json")), 0);
    assert_eq!(ContainersDir::detect(&MemArchive::new([("version", VERSION_1_1)])), 0);
}
