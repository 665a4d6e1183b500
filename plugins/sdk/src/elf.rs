//! The platform an ELF executable runs on, from its header: how a decoder
//! names the platform of a root file system that says nothing of it (read
//! the first [`ELF_HEADER_LEN`] bytes of its `/bin/sh`).

use crate::Platform;

/// How many bytes of a file [`elf_platform`] needs.
pub const ELF_HEADER_LEN: u32 = 20;

/// The `linux` platform, in OCI names (`amd64`, `arm64/v8`, `ppc64le`, …),
/// of the ELF file whose first bytes are `header`; `None` if it is not ELF
/// or its machine is not one OCI names.
///
/// ```
/// # use msb_plugin_sdk::elf_platform;
/// // e_ident (magic, ELFCLASS64, little-endian, …), e_type, e_machine = 62.
/// let header = [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 62, 0];
/// assert_eq!(elf_platform(&header).unwrap().architecture, "amd64");
/// assert!(elf_platform(b"#!/bin/sh\n").is_none());
/// ```
pub fn elf_platform(header: &[u8]) -> Option<Platform> {
    let header = header.get(..ELF_HEADER_LEN as usize)?;
    if header[..4] != *b"\x7fELF" {
        return None;
    }
    let wide = match header[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match header[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let bytes = [header[18], header[19]];
    let machine = if little { u16::from_le_bytes(bytes) } else { u16::from_be_bytes(bytes) };
    let (architecture, variant) = match (machine, wide, little) {
        (3, false, true) => ("386", None),
        (62, true, true) => ("amd64", None),
        (183, true, true) => ("arm64", Some("v8")),
        (40, false, true) => ("arm", None),
        (243, true, _) => ("riscv64", None),
        (21, true, true) => ("ppc64le", None),
        (21, true, false) => ("ppc64", None),
        (22, true, false) => ("s390x", None),
        (258, true, true) => ("loong64", None),
        (8, false, false) => ("mips", None),
        (8, false, true) => ("mipsle", None),
        (8, true, false) => ("mips64", None),
        (8, true, true) => ("mips64le", None),
        _ => return None,
    };
    Some(Platform { os: "linux".into(), architecture: architecture.into(), variant: variant.map(Into::into) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1];
        h.resize(18, 0);
        h.extend(if data == 1 { machine.to_le_bytes() } else { machine.to_be_bytes() });
        h
    }

    fn arch(h: &[u8]) -> Option<String> {
        elf_platform(h).map(|p| match p.variant {
            Some(v) => format!("{}/{v}", p.architecture),
            None => p.architecture,
        })
    }

    #[test]
    fn maps_machines_to_oci_names() {
        assert_eq!(arch(&header(2, 1, 62)).as_deref(), Some("amd64"));
        assert_eq!(arch(&header(2, 1, 183)).as_deref(), Some("arm64/v8"));
        assert_eq!(arch(&header(1, 1, 3)).as_deref(), Some("386"));
        assert_eq!(arch(&header(1, 1, 40)).as_deref(), Some("arm"));
        assert_eq!(arch(&header(2, 1, 21)).as_deref(), Some("ppc64le"));
        assert_eq!(arch(&header(2, 2, 22)).as_deref(), Some("s390x"));
        assert_eq!(arch(&header(2, 1, 243)).as_deref(), Some("riscv64"));
        assert_eq!(elf_platform(&header(2, 1, 62)).unwrap().os, "linux");
    }

    #[test]
    fn refuses_what_it_cannot_name() {
        assert_eq!(arch(&header(2, 1, 0x9999)), None, "unknown machine");
        assert_eq!(arch(&header(3, 1, 62)), None, "bad class");
        assert_eq!(arch(&header(2, 1, 62)[..19]), None, "short");
        assert_eq!(arch(b"#!/bin/sh\necho hello there\n"), None, "a script");
    }

    #[test]
    fn reads_this_machines_shell() {
        let bytes = std::fs::read("/bin/sh").expect("read /bin/sh");
        let want = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64/v8",
            _ => return,
        };
        assert_eq!(arch(&bytes).as_deref(), Some(want));
    }
}
