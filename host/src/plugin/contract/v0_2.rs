//! `msb:format@0.2.0` (`wit/v0.2.0`): 0.1.0 plus the archive itself as a
//! blob (`source::input`, `archive.input-digest`).

super::adapter!(
    "../wit/v0.2.0",
    archive: {
        fn input_digest(&mut self, _: Resource<ArchiveHandle>) -> Result<String, String> {
            self.digest_input()
        }
    },
    source: {
        wit::Source::Input => model::Source::Input,
    }
);
