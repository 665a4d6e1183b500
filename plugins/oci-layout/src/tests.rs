use super::*;
use msb_plugin_sdk::{MemArchive, Source, oci};

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn blob(c: char) -> String {
    format!("blobs/sha256/{}", c.to_string().repeat(64))
}

/// A layout with one image tagged `alpine:3.20`; more walking cases are
/// tested in the SDK's `layout` module.
fn layout() -> MemArchive {
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":2}},
           "layers":[{{"mediaType":"{}","digest":"{}","size":3}}]}}"#,
        oci::MEDIA_TYPE_OCI_CONFIG,
        digest('c'),
        oci::MEDIA_TYPE_OCI_LAYER_GZIP,
        digest('d')
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1,
            "annotations":{{"org.opencontainers.image.ref.name":"alpine:3.20"}}}}]}}"#,
        oci::MEDIA_TYPE_OCI_MANIFEST,
        digest('a')
    );
    MemArchive::new([
        ("oci-layout".to_string(), r#"{"imageLayoutVersion":"1.0.0"}"#.to_string()),
        ("index.json".to_string(), index),
        (blob('c'), "{}".to_string()),
        (blob('d'), "xyz".to_string()),
        (blob('a'), manifest),
    ])
}

#[test]
fn decodes_a_layout() {
    let archive = layout();
    assert_eq!(OciLayout::detect(&archive), 90);
    let images = OciLayout::decode(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].refs, ["alpine:3.20"]);
    assert!(matches!(&images[0].config.source, Source::Entry(p) if *p == blob('c')));
}

#[test]
fn defers_to_docker_save_when_manifest_json_is_present() {
    let mut archive = layout();
    archive.add("manifest.json", b"[]");
    assert_eq!(OciLayout::detect(&archive), 80);
}

#[test]
fn not_a_layout() {
    assert_eq!(OciLayout::detect(&MemArchive::new([("manifest.json", "[]")])), 0);
    let mut bare = MemArchive::new([("index.json", "{}")]);
    assert_eq!(OciLayout::detect(&bare), 0);
    bare.add("blobs/sha256/x", b"");
    assert_eq!(OciLayout::detect(&bare), 40);
}
