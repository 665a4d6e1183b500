//! Which decoders exist: those built into the binary, those installed under
//! `$MSB_HOME/plugins/`, and one named by path on the command line.

use super::runtime::{Plugin, PluginError, Runtime};
use std::path::Path;
use std::sync::Arc;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// Origin label of the embedded decoders.
pub const BUILT_IN: &str = "built-in";

/// Every available decoder, built-in first, then installed ones by file name.
pub struct Registry {
    plugins: Vec<Plugin>,
}

impl Registry {
    /// Loads the built-in decoders and the `*.wasm` files in `installed`.
    /// An installed plugin that fails to load is reported and skipped.
    pub fn load(runtime: &Arc<Runtime>, installed: &Path) -> Result<Registry, PluginError> {
        let mut plugins = Vec::new();
        for (name, bytes) in builtin::BUILTIN {
            let mut plugin = runtime.load(name, bytes, Some(name))?;
            plugin.set_origin(BUILT_IN);
            plugins.push(plugin);
        }
        let mut files: Vec<_> = std::fs::read_dir(installed)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        for file in files {
            match load_file(runtime, &file) {
                Ok(plugin) => plugins.push(plugin),
                Err(e) => eprintln!("warning: skipping installed {e}"),
            }
        }
        Ok(Registry { plugins })
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
