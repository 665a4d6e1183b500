//! Builds the decoder plugins in `../plugins` for `wasm32-wasip2`, compiles
//! them to native code with the runtime's engine settings
//! (`src/plugin/engine_config.rs`), and embeds both:
//! `$OUT_DIR/builtin_plugins.rs` lists a `Builtin` (name, component bytes,
//! precompiled bytes) per decoder. A cross build (target ≠ host) embeds no
//! precompiled code: the runtime compiles those decoders as it would any.
//!
//! Every member of the plugins workspace directly under `plugins/` but the
//! SDK is embedded; members deeper down (`plugins/testing/`) are built for
//! the tests but not embedded.
//!
//! The plugins are a separate workspace with their own target directory
//! (`target/plugins`), built by a nested cargo whose environment is stripped
//! of everything the outer cargo set for this build script.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

#[cfg(feature = "precompile")]
include!("src/plugin/engine_config.rs");

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ lives in the workspace root");
    let plugins = root.join("plugins");
    let target_dir = root.join("target").join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", manifest_dir.join("src/plugin/engine_config.rs").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.lock").display());
    let crates = plugin_crates(&plugins);
    for dir in &crates {
        println!("cargo:rerun-if-changed={}", dir.display());
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", TARGET, "--workspace"])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if is_outer_build_var(&key) {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status().expect("run cargo for the plugins");
    if !status.success() {
        panic!(
            "building the decoder plugins for {TARGET} failed (see above); \
             if the target is missing: rustup target add {TARGET}"
        );
    }

    let engine = precompiling_engine();
    let mut list = String::from("/// The decoders built into this binary.\n");
    list.push_str("pub const BUILTIN: &[Builtin] = &[\n");
    for dir in crates.iter().filter(|dir| dir.parent() == Some(plugins.as_path())) {
        let name = dir.file_name().and_then(|n| n.to_str()).expect("plugin dir names are UTF-8");
        if name == "sdk" {
            continue;
        }
        let wasm = target_dir.join(TARGET).join("release").join(format!("{}.wasm", name.replace('-', "_")));
        let embedded = out_dir.join(format!("{name}.wasm"));
        fs::copy(&wasm, &embedded).unwrap_or_else(|e| panic!("copy {}: {e}", wasm.display()));
        let precompiled = match &engine {
            Some(engine) => {
                let bytes = fs::read(&embedded).unwrap_or_else(|e| panic!("read {}: {e}", embedded.display()));
                let native = engine
                    .precompile_component(&bytes)
                    .unwrap_or_else(|e| panic!("precompile the {name} decoder: {e:#}"));
                let cwasm = out_dir.join(format!("{name}.cwasm"));
                fs::write(&cwasm, native).unwrap_or_else(|e| panic!("write {}: {e}", cwasm.display()));
                format!("Some(include_bytes!({:?}))", cwasm.display().to_string())
            }
            None => "None".to_string(),
        };
        writeln!(
            list,
            "    Builtin {{ name: {name:?}, wasm: include_bytes!({:?}), precompiled: {precompiled} }},",
            embedded.display().to_string()
        )
        .expect("write to String");
    }
    list.push_str("];\n");
    fs::write(out_dir.join("builtin_plugins.rs"), list).expect("write builtin_plugins.rs");
}

/// The engine that precompiles the built-ins: the runtime's settings, for
/// this machine. None in a cross build (this build script runs on the host,
/// whose CPU and wasmtime build are not the target's) or without the
/// `precompile` feature (the fuzz build: its wasmtime is instrumented).
#[cfg(feature = "precompile")]
fn precompiling_engine() -> Option<wasmtime::Engine> {
    if env::var("TARGET").ok() != env::var("HOST").ok() {
        return None;
    }
    Some(wasmtime::Engine::new(&engine_config()).expect("create the wasmtime engine that precompiles the built-ins"))
}

#[cfg(not(feature = "precompile"))]
fn precompiling_engine() -> Option<NoEngine> {
    None
}

/// Stands for the engine where there is none.
#[cfg(not(feature = "precompile"))]
struct NoEngine;

#[cfg(not(feature = "precompile"))]
impl NoEngine {
    fn precompile_component(&self, _: &[u8]) -> Result<Vec<u8>, String> {
        unreachable!("no engine is made without the precompile feature")
    }
}

/// The crate directories of the plugins workspace's `members`, sorted.
fn plugin_crates(plugins: &Path) -> Vec<PathBuf> {
    let manifest = fs::read_to_string(plugins.join("Cargo.toml")).expect("read plugins/Cargo.toml");
    let members = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('[')?.1.split_once(']'))
        .map(|(list, _)| list)
        .expect("plugins/Cargo.toml lists its members");
    let mut dirs: Vec<PathBuf> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| plugins.join(m))
        .collect();
    dirs.sort();
    dirs
}

/// Variables the outer cargo sets for build scripts, which would leak into
/// (and break) the nested wasm build. Registry, network and toolchain
/// settings are kept.
fn is_outer_build_var(key: &str) -> bool {
    const KEEP: &[&str] =
        &["CARGO_HOME", "CARGO_NET_OFFLINE", "CARGO_HTTP_", "CARGO_NET_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_"];
    if key.starts_with("CARGO_") {
        return !KEEP.iter().any(|k| key.starts_with(k));
    }
    matches!(
        key,
        "RUSTC"
            | "RUSTC_WRAPPER"
            | "RUSTC_WORKSPACE_WRAPPER"
            | "RUSTC_LINKER"
            | "RUSTDOC"
            | "RUSTFLAGS"
            | "RUSTDOCFLAGS"
            | "TARGET"
            | "HOST"
            | "OUT_DIR"
            | "PROFILE"
            | "OPT_LEVEL"
            | "DEBUG"
            | "NUM_JOBS"
            | "CARGO"
            | "CARGO_MAKEFLAGS"
            // The plugins build with the toolchain rust-toolchain.toml pins
            // (it has wasm32-wasip2), even under `cargo +nightly fuzz`.
            | "RUSTUP_TOOLCHAIN"
            | "MAKEFLAGS"
            | "MFLAGS"
    )
}
