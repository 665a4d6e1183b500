//! `msb:format@0.1.0` (`wit/v0.1.0`): the first contract.

super::adapter!("../wit/v0.1.0", archive: {}, source: {});
