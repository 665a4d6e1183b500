//! The `docker-save` decoder, natively, on arbitrary archives: a raw tar
//! (seeds) or a structured archive biased toward its format. `detect` and
//! `decode` (and any stream it returns) must never panic; errors are fine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    msb_fuzz::decoder::run::<docker_save::DockerSave>(data);
});
