use super::*;
use msb_plugin_sdk::{ErrorKind, MemArchive};

fn sha(bytes: &str) -> String {
    MemArchive::new([("x", bytes)]).digest("x", false).unwrap()
}

/// A layer `id` on `parent`, made by `cmd`.
fn add_layer(archive: &mut MemArchive, id: &str, parent: Option<&str>, cmd: &str) {
    let parent = parent.map(|p| format!(r#""parent":"{p}","#)).unwrap_or_default();
    let json = format!(
        r#"{{"id":"{id}",{parent}"created":"2015-01-0{n}T00:00:00Z","author":"me","container":"c{id}",
            "container_config":{{"Cmd":["/bin/sh","-c","{cmd}"]}},"config":{{"Cmd":["sh"],"Env":["A=1"]}},
            "docker_version":"1.6.2","architecture":"amd64","os":"linux","Size":3}}"#,
        n = id.len()
    );
    archive.add(&format!("{id}/VERSION"), b"1.0");
    archive.add(&format!("{id}/json"), json.as_bytes());
    archive.add(&format!("{id}/layer.tar"), format!("tar of {id}").as_bytes());
}

/// Layers `a` ← `bb` ← `ccc`; `r:1` and `r:latest` name `ccc`, `s:x` names `bb`.
fn chain() -> MemArchive {
    let mut archive = MemArchive::new([("repositories", r#"{"r":{"1":"ccc","latest":"ccc"},"s":{"x":"bb"}}"#)]);
    add_layer(&mut archive, "a", None, "ADD file:x in /");
    add_layer(&mut archive, "bb", Some("a"), "apk add curl");
    add_layer(&mut archive, "ccc", Some("bb"), "#(nop) CMD [\\\"sh\\\"]");
    archive
}

fn config_of(image: &Image) -> Value {
    match &image.config.source {
        Source::Bytes(bytes) => serde_json::from_slice(bytes).unwrap(),
        other => panic!("expected bytes, got {other:?}"),
    }
}

#[test]
fn walks_parent_chains_and_synthesizes_configs() {
    let archive = chain();
    assert_eq!(DockerV1::detect(&archive), 100);
    let images = DockerV1::decode(&archive).unwrap();
    assert_eq!(images.len(), 2, "tags of one top layer are one image");
    let top = &images[0];
    assert_eq!(top.refs, ["r:1", "r:latest"]);
    assert!(top.manifest.is_none() && top.platform.is_none());
    assert_eq!(top.config.media_type.as_deref(), Some(MEDIA_TYPE_DOCKER_CONFIG));
    let paths: Vec<_> = top.layers.iter().map(|l| l.blob.source.clone()).collect();
    assert!(matches!(&paths[..], [Source::Entry(a), Source::Entry(b), Source::Entry(c)]
        if a == "a/layer.tar" && b == "bb/layer.tar" && c == "ccc/layer.tar"));
    let diff_ids: Vec<String> = ["a", "bb", "ccc"].iter().map(|id| sha(&format!("tar of {id}"))).collect();
    assert_eq!(top.layers.iter().map(|l| l.diff_id.clone().unwrap()).collect::<Vec<_>>(), diff_ids);
    assert!(top.layers.iter().all(|l| l.blob.digest.is_none() && l.blob.media_type.is_none()));

    let config = config_of(top);
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["container"], "cccc");
    assert_eq!(config["config"]["Env"][0], "A=1");
    assert_eq!(config["docker_version"], "1.6.2");
    for key in ["id", "parent", "Size"] {
        assert!(config.get(key).is_none(), "{key} is v1-only");
    }
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1]["created_by"], "/bin/sh -c apk add curl");
    assert_eq!(history[0]["created"], "2015-01-01T00:00:00Z");
    assert_eq!(history[2]["author"], "me");

    assert_eq!(images[1].refs, ["s:x"]);
    assert_eq!(images[1].layers.len(), 2);
    assert_eq!(config_of(&images[1])["rootfs"]["diff_ids"], serde_json::json!(diff_ids[..2]));
}

#[test]
fn configs_are_deterministic() {
    let bytes = |images: Vec<Image>| match &images[0].config.source {
        Source::Bytes(b) => b.clone(),
        _ => unreachable!(),
    };
    let first = bytes(DockerV1::decode(&chain()).unwrap());
    assert_eq!(first, bytes(DockerV1::decode(&chain()).unwrap()));
    let text = String::from_utf8(first).unwrap();
    assert!(text.starts_with(r#"{"architecture":"amd64","author":"me","config":"#), "sorted keys: {text}");
}

#[test]
fn a_parent_loop_is_refused() {
    let mut archive = MemArchive::new([("repositories", r#"{"r":{"1":"x"}}"#)]);
    add_layer(&mut archive, "x", Some("y"), "a");
    add_layer(&mut archive, "y", Some("x"), "b");
    let err = DockerV1::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Malformed, Some("y/json")));
    assert!(err.message.contains("loops back to layer x"), "{err:?}");
}

#[test]
fn missing_layers_are_named() {
    let mut archive = MemArchive::new([("repositories", r#"{"r":{"1":"x"}}"#)]);
    add_layer(&mut archive, "x", Some("gone"), "a");
    let err = DockerV1::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Missing, Some("gone/json")));
    assert_eq!(err.message, "layer gone, the parent of layer x, is not in the archive");

    let archive = MemArchive::new([("repositories", r#"{"r":{"1":"nope"}}"#)]);
    let err = DockerV1::decode(&archive).unwrap_err();
    assert_eq!(err.entry.as_deref(), Some("nope/json"));
    assert!(err.message.contains("top layer of r:1"), "{err:?}");

    let mut archive = chain();
    archive.remove("bb/layer.tar");
    let err = DockerV1::decode(&archive).unwrap_err();
    assert_eq!((err.kind, err.entry.as_deref()), (ErrorKind::Missing, Some("bb/layer.tar")));

    let archive = MemArchive::new([("repositories", r#"{"r":{"1":"../etc"}}"#)]);
    assert_eq!(DockerV1::decode(&archive).unwrap_err().kind, ErrorKind::Malformed);
}

#[test]
fn detects_v1_only() {
    let mut archive = chain();
    archive.add("manifest.json", b"[]");
    assert_eq!(DockerV1::detect(&archive), 0, "docker save 1.10+ has manifest.json");
    assert_eq!(DockerV1::detect(&MemArchive::new([("repositories", "{}")])), 0);
    assert_eq!(DockerV1::detect(&MemArchive::new([("a/json", "{}")])), 0);
}
