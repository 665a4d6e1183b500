//! The decoder's logic, natively, on in-memory archives:
//! `cargo test --manifest-path examples/rootfs-tar/Cargo.toml`.

use super::RootfsTar;
use msb_plugin_sdk::*;

/// The first bytes of a 64-bit little-endian ELF executable for `machine`.
fn elf(machine: u16) -> Vec<u8> {
    let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1, 1];
    header.resize(18, 0);
    header.extend(machine.to_le_bytes());
    header.resize(64, 0);
    header
}

/// A debootstrap-style tree: `bin` is a link to `usr/bin`, `sh` to `dash`.
fn rootfs() -> MemArchive {
    let mut archive = MemArchive::default();
    archive.add_dir("etc").add("etc/os-release", b"ID=test\n").add_symlink("bin", "usr/bin");
    archive.add_dir("usr").add_dir("usr/bin").add("usr/bin/dash", &elf(183)).add_symlink("usr/bin/sh", "dash");
    archive.set_input(b"the tarball");
    archive
}

#[test]
fn detects_a_root_file_system_but_no_image_archive() {
    assert_eq!(RootfsTar::detect(&rootfs()), 20);
    assert_eq!(RootfsTar::detect(rootfs().add("index.json", b"{}")), 0);
    assert_eq!(RootfsTar::detect(&MemArchive::new([("etc/hosts", "")])), 0);
    assert_eq!(RootfsTar::detect(&MemArchive::new([("bin/sh", "")])), 0);
}

#[test]
fn the_tarball_is_the_one_layer() {
    let images = RootfsTar::decode(&rootfs()).unwrap();
    let [image] = images.as_slice() else { panic!("one image: {images:?}") };
    let diff_id = rootfs().input_digest().unwrap();
    assert!(image.refs.is_empty());
    assert_eq!(image.layers.len(), 1);
    assert!(matches!(image.layers[0].blob.source, Source::Input));
    assert_eq!(image.layers[0].diff_id.as_deref(), Some(diff_id.as_str()));
    let Source::Bytes(config) = &image.config.source else { panic!("a made config") };
    let config: serde_json::Value = serde_json::from_slice(config).unwrap();
    assert_eq!((config["architecture"].as_str(), config["variant"].as_str()), (Some("arm64"), Some("v8")));
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([diff_id]));
    assert!(config["config"]["Env"][0].as_str().unwrap().starts_with("PATH=/usr/local/sbin:"));
}

#[test]
fn a_tree_without_a_shell_binary_is_refused_naming_it() {
    let mut archive = rootfs();
    archive.remove("usr/bin/dash").add("usr/bin/dash", b"#!/not/elf\n");
    let error = RootfsTar::decode(&archive).unwrap_err();
    assert_eq!((error.kind, error.entry.as_deref()), (ErrorKind::Unsupported, Some("usr/bin/dash")));
    let error = RootfsTar::decode(archive.remove("usr/bin/sh")).unwrap_err();
    assert_eq!((error.kind, error.entry.as_deref()), (ErrorKind::Missing, Some("bin/sh")));
}
