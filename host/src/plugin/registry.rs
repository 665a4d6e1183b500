//! Which decoders exist: those built into the binary, those installed under
//! `$MSB_HOME/plugins/`, and one named by path on the command line.
//!
//! Names are unique: a plugin is known by one name, valid as a file name
//! ([`super::is_valid_name`]), and an installed plugin lives in
//! `plugins/<its name>.wasm`. An installed file whose plugin calls itself
//! anything else, or takes a name already in use, is skipped with a warning;
//! so is a `--plugin PATH` whose name is taken. Detection and decoding use
//! the same [`Plugin`] object, so the decoder that wins is the one that runs.

use super::runtime::{Plugin, PluginError, Runtime, debug};
use std::path::Path;
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

/// Every available decoder, built-in first, then installed ones by file name.
pub struct Registry {
    plugins: Vec<Plugin>,
}

impl Registry {
    /// Loads the built-in decoders (their embedded native code: nothing is
    /// compiled or run) and the `*.wasm` files in `installed` (from the
    /// compile cache, each run once to ask its name). An installed plugin
    /// that fails to load is reported and skipped. `MSB_LOG=debug` prints
    /// how long this took.
    pub fn load(runtime: &Arc<Runtime>, installed: &Path) -> Result<Registry, PluginError> {
        let start = Instant::now();
        let mut plugins = Vec::new();
        for builtin in builtin::BUILTIN {
            let mut plugin = runtime.load_builtin(builtin.name, builtin.wasm, builtin.precompiled)?;
            plugin.set_origin(BUILT_IN);
            plugins.push(plugin);
        }
        let builtins_done = start.elapsed();
        let mut files: Vec<_> = std::fs::read_dir(installed)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        let mut registry = Registry { plugins };
        for file in files {
            match load_file(runtime, &file).and_then(|p| registry.check_installed(&file, p)) {
                Ok(plugin) => registry.plugins.push(plugin),
                Err(e) => eprintln!("warning: skipping installed {e}"),
            }
        }
        debug(|| {
            let installed = registry.plugins.len() - builtin::BUILTIN.len();
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

    /// `plugin`, loaded from the installed `file`, if its name is its file's
    /// and not taken.
    fn check_installed(&self, file: &Path, plugin: Plugin) -> Result<Plugin, PluginError> {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if plugin.name() != stem {
            let message = format!("calls itself {}, not {stem} as its file name says", plugin.name());
            return Err(PluginError::Load { name: file.display().to_string(), message });
        }
        self.check_free(plugin)
    }

    /// `plugin`, if no registered decoder has its name.
    fn check_free(&self, plugin: Plugin) -> Result<Plugin, PluginError> {
        match self.get(plugin.name()) {
            None => Ok(plugin),
            Some(taken) => Err(PluginError::Load {
                name: plugin.origin().to_string(),
                message: match taken.origin() {
                    BUILT_IN => format!("calls itself {}, the name of a built-in decoder", plugin.name()),
                    path => format!("calls itself {}, the name of the decoder in {path}", plugin.name()),
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

    /// Every decoder.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The decoder called `name`.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.name() == name)
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
