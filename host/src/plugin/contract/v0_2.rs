//! `msb:format@0.2.0` (`wit/v0.2.0`): 0.1.0 plus the archive itself as a
//! blob (`source::input`, `archive.input-digest`).

super::adapter!("../wit/v0.2.0");

use crate::plugin::sandbox::ArchiveHandle;
use wasmtime::component::Resource;

impl wit::HostArchive for HostState {
    fn entries(&mut self, _: Resource<ArchiveHandle>) -> Vec<wit::Entry> {
        HostState::entries(self).iter().map(entry).collect()
    }

    fn read(&mut self, _: Resource<ArchiveHandle>, path: String, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        self.read_archive(&path, offset, len)
    }

    fn digest(&mut self, _: Resource<ArchiveHandle>, path: String, uncompressed: bool) -> Result<String, String> {
        self.digest_entry(&path, uncompressed)
    }

    fn input_digest(&mut self, _: Resource<ArchiveHandle>) -> Result<String, String> {
        self.digest_input()
    }

    fn drop(&mut self, handle: Resource<ArchiveHandle>) -> wasmtime::Result<()> {
        self.drop_archive(handle)
    }
}

impl From<wit::Source> for model::Source {
    fn from(s: wit::Source) -> Self {
        match s {
            wit::Source::Entry(path) => model::Source::Entry(path),
            wit::Source::Bytes(bytes) => model::Source::Bytes(bytes),
            wit::Source::Stream(id) => model::Source::Stream(id),
            wit::Source::Input => model::Source::Input,
        }
    }
}
