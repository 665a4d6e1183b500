// The wasmtime settings of the plugin engine, in one place for the two
// engines that must agree on them: `host/build.rs` `include!`s this file to
// precompile the built-in decoders, and the runtime (`runtime.rs`) runs
// them. A precompiled component loads only into an engine with the same
// settings; wasmtime checks that (and the CPU's features) when
// deserializing, and on a mismatch the runtime compiles the wasm instead.
//
// Plain `//` comments: an inner doc comment cannot be `include!`d.

/// The settings every plugin is compiled and run with: the component
/// model, epoch interruption (the time limits), a 1 MiB wasm stack.
pub fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).epoch_interruption(true).max_wasm_stack(1 << 20);
    config
}
