//! Which decoders exist: those built into the binary, those installed in
//! the store's `plugins/` ([`super::installed`]), and one named by path on
//! the command line; and which of them take part in detection.
//!
//! Names are unique: a plugin is known by one name, valid as a file name
//! ([`super::is_valid_name`]). An installed component whose plugin calls
//! itself anything but the name it was installed as (or, in an older store,
//! its file name), or takes a name already in use, is skipped with a
//! warning; so is a `--plugin PATH` whose name is taken. Detection and
//! decoding use the same [`Plugin`] object, so the decoder that wins is the
//! one that runs.

use super::installed::Installed;
use super::runtime::{Plugin, PluginError, Runtime, debug};
use crate::digest::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A decoder embedded in the binary by `build.rs`.
struct Builtin {
    name: &'static str,
    /// The component.
    wasm: &'static [u8],
    /// Its native code, compiled by `build.rs` with the runtime's engine
    /// settings; None in a cross build.
    precompiled: Option<&'static [u8]>,
}

mod builtin {
    use super::Builtin;
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// Origin label of the embedded decoders.
pub const BUILT_IN: &str = "built-in";

/// Origin label of the decoders installed in the store.
pub const INSTALLED: &str = "installed";

/// The names of the built-in decoders.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    builtin::BUILTIN.iter().map(|b| b.name)
}

/// Where a decoder comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the binary.
    BuiltIn,
    /// Installed in the store, in this file.
    Installed(PathBuf),
}

impl Origin {
    /// [`BUILT_IN`] or [`INSTALLED`].
    pub fn label(&self) -> &'static str {
        match self {
            Origin::BuiltIn => BUILT_IN,
            Origin::Installed(_) => INSTALLED,
        }
    }
}

/// A decoder the registry knows, and what msb knows of it.
pub struct Registered {
    plugin: Plugin,
    origin: Origin,
    digest: Digest,
    enabled: bool,
}

impl Registered {
    fn new(plugin: Plugin, origin: Origin, digest: Digest, enabled: bool) -> Registered {
        Registered { plugin, origin, digest, enabled }
    }

    /// The decoder, ready to run.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Where it comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The SHA-256 of its component (the `.wasm` file).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The `msb:format` version it was built for (`0.1.0`).
    pub fn contract(&self) -> &str {
        self.plugin.contract()
    }

    /// Whether it takes part in detection (`msb plugin disable` turns that
    /// off; `--plugin NAME` uses a disabled decoder all the same).
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// Every available decoder, built-in first, then installed ones by name.
pub struct Registry {
    decoders: Vec<Registered>,
}

impl Registry {
    /// Loads the built-in decoders (their embedded native code: nothing is
    /// compiled or run) and those installed in the plugins directory
    /// `installed` (from the compile cache, each run once to ask its name).
    /// An installed plugin that fails to load is reported and skipped.
    /// `MSB_LOG=debug` prints how long this took.
    pub fn load(runtime: &Arc<Runtime>, installed: &Path) -> Result<Registry, PluginError> {
        let start = Instant::now();
        let state = Installed::read(installed)
            .map_err(|e| PluginError::Load { name: "list".to_string(), message: e.to_string() })?;
        let mut registry = Registry { decoders: Vec::new() };
        for builtin in builtin::BUILTIN {
            let mut plugin = runtime.load_builtin(builtin.name, builtin.wasm, builtin.precompiled)?;
            plugin.set_origin(BUILT_IN);
            let enabled = !state.is_disabled(builtin.name);
            registry.decoders.push(Registered::new(plugin, Origin::BuiltIn, Digest::of(builtin.wasm), enabled));
        }
        let builtins_done = start.elapsed();
        // Installed by name, then an older msb's `<name>.wasm` files.
        let files = state
            .names()
            .map(|(name, digest)| (name.to_string(), state.component_path(digest), Some(digest)))
            .chain(state.legacy_files().into_iter().map(|(name, path)| (name, path, None)));
        for (name, path, digest) in files.collect::<Vec<_>>() {
            match registry.load_installed(runtime, &name, &path, digest) {
                Ok((plugin, digest)) => {
                    let enabled = !state.is_disabled(&name);
                    registry.decoders.push(Registered::new(plugin, Origin::Installed(path), digest, enabled));
                }
                Err(e) => eprintln!("warning: skipping installed {e}"),
            }
        }
        debug(|| {
            let installed = registry.decoders.len() - builtin::BUILTIN.len();
            format!(
                "plugins ready in {:.1} ms: {} built-in in {:.1} ms, {installed} installed in {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3,
                builtin::BUILTIN.len(),
                builtins_done.as_secs_f64() * 1e3,
                (start.elapsed() - builtins_done).as_secs_f64() * 1e3,
            )
        });
        Ok(registry)
    }

    /// The decoder installed as `name` in `path` (with the component
    /// `digest`, or None for an older msb's `<name>.wasm`), and the digest
    /// of its component, if its content is what its name says, it calls
    /// itself `name`, and that name is free.
    fn load_installed(
        &self,
        runtime: &Arc<Runtime>,
        name: &str,
        path: &Path,
        digest: Option<&Digest>,
    ) -> Result<(Plugin, Digest), PluginError> {
        let origin = path.display().to_string();
        let error = |message: String| PluginError::Load { name: origin.clone(), message };
        let wasm = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let actual = Digest::of(&wasm);
        if let Some(digest) = digest.filter(|d| actual != **d) {
            return Err(error(format!("content does not match its name ({digest})")));
        }
        let plugin = runtime.load(&origin, &wasm, None)?;
        if plugin.name() != name {
            let recorded = if digest.is_some() { "it was installed as" } else { "its file name says" };
            return Err(error(format!("calls itself {}, not {name} as {recorded}", plugin.name())));
        }
        Ok((self.check_free(plugin)?, actual))
    }

    /// `plugin`, if no registered decoder has its name.
    fn check_free(&self, plugin: Plugin) -> Result<Plugin, PluginError> {
        match self.get(plugin.name()) {
            None => Ok(plugin),
            Some(taken) => Err(PluginError::Load {
                name: plugin.origin().to_string(),
                message: match taken.origin() {
                    Origin::BuiltIn => format!("calls itself {}, the name of a built-in decoder", plugin.name()),
                    Origin::Installed(path) => {
                        format!("calls itself {}, the name of the decoder in {}", plugin.name(), path.display())
                    }
                },
            }),
        }
    }

    /// The decoder in the component at `path` (`--plugin PATH`), refused if
    /// it takes the name of a registered decoder (errors and `plugin ls`
    /// would name the wrong one; install it to replace an installed one).
    pub fn load_path(&self, runtime: &Arc<Runtime>, path: &Path) -> Result<Plugin, PluginError> {
        self.check_free(load_file(runtime, path)?)
    }

    /// Every decoder, enabled or not.
    pub fn decoders(&self) -> &[Registered] {
        &self.decoders
    }

    /// The decoder called `name`, enabled or not.
    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.decoders.iter().find(|d| d.name() == name)
    }
}

/// Loads the component at `path`.
pub fn load_file(runtime: &Arc<Runtime>, path: &Path) -> Result<Plugin, PluginError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| PluginError::Load { name: origin.clone(), message: e.to_string() })?;
    runtime.load(&origin, &bytes, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Limits;

    #[test]
    fn built_ins_load_from_their_embedded_code_or_else_compile() {
        let runtime = Runtime::new(None, Limits::default()).unwrap();
        for b in builtin::BUILTIN {
            // build.rs and the runtime agree on the engine: the embedded
            // code is used as is, never silently replaced by a compile.
            let native = b.precompiled.expect("a native build embeds precompiled code");
            // SAFETY: as in `Runtime::load_builtin`.
            assert!(unsafe { wasmtime::component::Component::deserialize(runtime.engine(), native) }.is_ok());
            let plugin = runtime.load_builtin(b.name, b.wasm, b.precompiled).unwrap();
            assert_eq!(plugin.info().unwrap().name, b.name);
        }
        // Code wasmtime refuses (here: not code at all) is compiled from the wasm.
        let b = &builtin::BUILTIN[0];
        let plugin = runtime.load_builtin(b.name, b.wasm, Some(b"not native code")).unwrap();
        assert_eq!(plugin.info().unwrap().name, b.name);
    }
}
