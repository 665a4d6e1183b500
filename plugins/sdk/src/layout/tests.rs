use super::*;
use crate::oci;
use crate::{ErrorKind, MemArchive, Source};

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn blob(c: char) -> String {
    format!("blobs/sha256/{}", c.to_string().repeat(64))
}

fn manifest_json() -> String {
    format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":2}},
           "layers":[{{"mediaType":"{}","digest":"{}","size":3}}]}}"#,
        oci::MEDIA_TYPE_OCI_CONFIG,
        digest('c'),
        oci::MEDIA_TYPE_OCI_LAYER_GZIP,
        digest('d')
    )
}

fn layout(index: &str) -> MemArchive {
    MemArchive::new([
        ("oci-layout".to_string(), r#"{"imageLayoutVersion":"1.0.0"}"#.to_string()),
        ("index.json".to_string(), index.to_string()),
        (blob('c'), "{}".to_string()),
        (blob('d'), "xyz".to_string()),
        (blob('a'), manifest_json()),
    ])
}

#[test]
fn single_manifest_with_ref() {
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1,
            "annotations":{{"org.opencontainers.image.ref.name":"alpine:3.20"}}}}]}}"#,
        oci::MEDIA_TYPE_OCI_MANIFEST,
        digest('a')
    );
    let archive = layout(&index);
    let images = images(&archive).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.refs, ["alpine:3.20"]);
    assert!(image.indexes.is_empty());
    assert!(matches!(&image.config.source, Source::Entry(p) if *p == blob('c')));
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.layers[0].blob.digest.as_deref(), Some(digest('d').as_str()));
}

#[test]
fn nested_index_keeps_platforms_and_attaches_attestations() {
    let nested = format!(
        r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"{m}","digest":"{a}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{m}","digest":"{a}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
        m = oci::MEDIA_TYPE_OCI_MANIFEST,
        a = digest('a')
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1,
            "annotations":{{"io.containerd.image.name":"docker.io/library/x:1","org.opencontainers.image.ref.name":"1"}}}}]}}"#,
        oci::MEDIA_TYPE_OCI_INDEX,
        digest('e')
    );
    let mut archive = layout(&index);
    archive.add(&blob('e'), nested.as_bytes());
    let images = images(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].refs, ["docker.io/library/x:1"]);
    assert_eq!(images[0].indexes.len(), 1);
    let platform = images[0].platform.as_ref().unwrap();
    assert_eq!((platform.architecture.as_str(), platform.variant.as_deref()), ("arm64", Some("v8")));
    // The attestation is no image, but its manifest, config and layer ride along.
    let attached: Vec<_> = images[0].attachments.iter().map(|b| b.digest.clone().unwrap()).collect();
    assert_eq!(attached, [digest('a'), digest('c'), digest('d')]);
}

#[test]
fn missing_blob_names_the_entry() {
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1}}]}}"#,
        oci::MEDIA_TYPE_OCI_MANIFEST,
        digest('f')
    );
    let err = images(&layout(&index)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Missing);
    assert_eq!(err.entry, Some(blob('f')));
}

#[test]
fn self_referencing_index_is_refused() {
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1}}]}}"#,
        oci::MEDIA_TYPE_OCI_INDEX,
        digest('e')
    );
    let mut archive = layout(&index);
    archive.add(&blob('e'), index.as_bytes());
    let err = images(&archive).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported, "{err}");
}

#[test]
fn bad_digest_is_malformed() {
    let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../etc","size":1}]}"#;
    let err = images(&layout(index)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
    assert_eq!(err.entry.as_deref(), Some("index.json"));
}

#[test]
fn unknown_layout_version_is_unsupported() {
    let mut archive = MemArchive::new([("oci-layout", r#"{"imageLayoutVersion":"2.0.0"}"#)]);
    archive.add("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    let err = images(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Unsupported, Some("oci-layout")));
}

#[test]
fn a_manifest_labelled_as_an_index_is_malformed() {
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":1}}]}}"#,
        oci::MEDIA_TYPE_OCI_INDEX,
        digest('a')
    );
    let error = images(&layout(&index)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Malformed);
    assert!(error.message.contains("it is no image index"), "{}", error.message);
}
