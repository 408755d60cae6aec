// SPDX-License-Identifier: GPL-2.0

//! The migration stream of an ADI: what the core saves, how it is framed,
//! and how a stream is checked before anything of it is applied.
//!
//! A stream is a header, sections and an end mark, all little endian:
//!
//! - header ([`HEADER_LEN`] bytes): [`MAGIC`], [`VERSION`], the header's
//!   length, then the ADI type's identity and geometry (name, PCI IDs and
//!   class, BAR sizes and flags, MSI-X vectors and placement, the PF's
//!   state size), which must equal the destination's;
//! - sections, each a tag, a length and that many bytes: [`Section::Config`]
//!   (the 4 KiB config space), [`Section::Msix`] (table and pending bits),
//!   [`Section::Pf`] (the PF's own part, as its `save` wrote it),
//!   [`Section::Qos`] (the ADI's QoS settings, [`QOS_LEN`] bytes), each
//!   exactly once, in that order;
//! - [`Section::End`], whose 4 bytes are the CRC-32C of everything before
//!   them.
//!
//! In pre-copy the header is the initial data; the sections and the end
//! follow at STOP_COPY. A stream is taken whole before it is applied, so a
//! destination never holds half of one.
//!
//! Host identifiers are not in the stream: the destination ADI keeps its
//! own PASID and its PF's queues. The PF's registers the guest can read
//! the PASID from report the destination's.

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::config;
use crate::irqs::Irqs;
use crate::layout::AdiType;
use crate::vdcm_kernel::crc::crc32c;
use crate::vdcm_kernel::pf_host::Qos;
use crate::vdcm_kernel::vfio::migration::MigState;
use crate::vdcm_kernel::vfio::migration::MigrationStream;
use crate::vdcm_kernel::wire::Reader;
use crate::vdcm_kernel::wire::Writer;

/// First word of a stream: "VDCM".
pub const MAGIC: u32 = 0x4d43_4456;
/// Version of the stream's framing (2: the QoS section).
pub const VERSION: u16 = 2;
/// Bytes of the QoS section: weight, priority, max rate, guaranteed rate,
/// threshold and 4 reserved zero bytes.
pub const QOS_LEN: usize = 4 + 4 + 8 + 8 + 4 + 4;
/// Bytes of the header.
pub const HEADER_LEN: usize =
    4 + 2 + 2 + NAME_LEN + 5 * 2 + 2 + 4 + 6 * 8 + 6 + 2 + 2 + 1 + 1 + 4 + 4 + 4;
/// Bytes of the type name in the header (NUL padded).
const NAME_LEN: usize = 16;
/// Bytes of a section's tag and length.
const SECTION_HEAD: usize = 8;

/// The sections of a stream, by tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Section {
    /// The end mark: a CRC-32C of the stream before it.
    End = 0,
    /// Config space, [`config::CONFIG_SPACE_SIZE`] bytes.
    Config = 1,
    /// MSI-X table and pending bits ([`Irqs::save`]).
    Msix = 2,
    /// The PF's part, at most the type's state size.
    Pf = 3,
    /// The QoS settings, [`QOS_LEN`] bytes.
    Qos = 4,
}

/// The migration state of an ADI and its open data stream, under the
/// ADI's `ctl`.
pub struct MigCtl {
    /// Where the state machine is.
    pub state: MigState,
    /// The stream user space reads, in PRE_COPY and STOP_COPY.
    pub save: Option<Arc<MigrationStream>>,
    /// The stream user space writes, in RESUMING.
    pub resume: Option<Arc<MigrationStream>>,
}

impl Default for MigCtl {
    /// A device as opened: running, no stream.
    fn default() -> Self {
        MigCtl {
            state: MigState::Running,
            save: None,
            resume: None,
        }
    }
}

impl MigCtl {
    /// Ends the data streams: their files fail with `ENODEV` from now on.
    pub fn end_streams(&mut self) {
        for s in [self.save.take(), self.resume.take()].into_iter().flatten() {
            drop(s.end());
        }
    }
}

/// `errno` values the kernel crate has no constant for.
fn errno(e: u32) -> Error {
    Error::from_errno(-(e as i32))
}

/// Why a stream was refused: the errno and the message for the log.
#[derive(Debug)]
pub struct Refused {
    /// What the resuming user sees.
    pub errno: Error,
    /// What the log says.
    pub why: &'static str,
}

fn refuse(errno: Error, why: &'static str) -> Refused {
    Refused { errno, why }
}

/// A truncated stream: `ENODATA`.
fn truncated(why: &'static str) -> Refused {
    refuse(errno(kernel::bindings::ENODATA), why)
}

/// Bytes of a whole stream for an ADI of type `ty`, at most.
pub fn max_len(ty: &AdiType) -> usize {
    HEADER_LEN
        + SECTION_HEAD
        + config::CONFIG_SPACE_SIZE
        + SECTION_HEAD
        + Irqs::saved_size(ty.msix.vectors)
        + SECTION_HEAD
        + ty.state_size
        + SECTION_HEAD
        + QOS_LEN
        + SECTION_HEAD
        + 4
}

/// The QoS section's bytes for `q`.
pub fn qos_bytes(q: &Qos) -> Result<[u8; QOS_LEN]> {
    let mut out = [0u8; QOS_LEN];
    let mut w = Writer::new(&mut out);
    w.u32(q.weight)?;
    w.u32(q.priority)?;
    w.u64(q.max_rate)?;
    w.u64(q.guaranteed_rate)?;
    w.u32(q.threshold)?;
    w.u32(0)?;
    Ok(out)
}

/// The settings of a QoS section (its length checked by [`parse`]); the
/// values are checked by the caller against the ADI's type.
pub fn qos_from(bytes: &[u8]) -> core::result::Result<Qos, Refused> {
    let bad = |_| refuse(EINVAL, "the QoS section is malformed");
    let mut r = Reader::new(bytes);
    let q = Qos {
        weight: r.u32().map_err(bad)?,
        priority: r.u32().map_err(bad)?,
        max_rate: r.u64().map_err(bad)?,
        guaranteed_rate: r.u64().map_err(bad)?,
        threshold: r.u32().map_err(bad)?,
    };
    if r.u32().map_err(bad)? != 0 {
        return Err(refuse(
            EINVAL,
            "the QoS section's reserved bytes are not zero",
        ));
    }
    Ok(q)
}

/// Writes the header of a stream for type `ty`.
pub fn write_header(ty: &AdiType, w: &mut Writer<'_>) -> Result {
    w.u32(MAGIC)?;
    w.u16(VERSION)?;
    w.u16(HEADER_LEN as u16)?;
    let name = ty.name.to_bytes();
    let field = w.reserve(NAME_LEN)?;
    let n = name.len().min(NAME_LEN);
    field
        .get_mut(..n)
        .ok_or(EINVAL)?
        .copy_from_slice(name.get(..n).ok_or(EINVAL)?);
    let ids = &ty.ids;
    for v in [
        ids.vendor,
        ids.device,
        ids.subsystem_vendor,
        ids.subsystem,
        u16::from(ids.revision),
    ] {
        w.u16(v)?;
    }
    w.u16(0)?;
    w.u32(ids.class)?;
    for b in ty.bars.iter() {
        w.u64(b.size)?;
    }
    for b in ty.bars.iter() {
        w.u8(u8::from(b.bits64) | u8::from(b.prefetchable) << 1)?;
    }
    w.u16(0)?;
    w.u16(ty.msix.vectors)?;
    w.u8(ty.msix.bar as u8)?;
    w.u8(0)?;
    w.u32(ty.msix.table as u32)?;
    w.u32(ty.msix.pba as u32)?;
    w.u32(ty.state_size as u32)?;
    Ok(())
}

/// Writes a section's tag and length, then its bytes.
pub fn write_section(w: &mut Writer<'_>, tag: Section, bytes: &[u8]) -> Result {
    w.u32(tag as u32)?;
    w.u32(u32::try_from(bytes.len()).map_err(|_| EINVAL)?)?;
    w.bytes(bytes)
}

/// Writes the end mark: `stream` is everything written before it (header
/// included).
pub fn write_end(w: &mut Writer<'_>, stream_crc: u32) -> Result {
    w.u32(Section::End as u32)?;
    w.u32(4)?;
    // The end's own tag and length are covered too.
    let crc = crc32c(stream_crc, &[0, 0, 0, 0, 4, 0, 0, 0]);
    w.u32(!crc)
}

/// The parts of a stream that passed every check.
pub struct Parsed<'a> {
    /// Config space image.
    pub config: &'a [u8],
    /// MSI-X state.
    pub msix: &'a [u8],
    /// The PF's part.
    pub pf: &'a [u8],
    /// The QoS settings, as saved (not yet checked against the type).
    pub qos: Qos,
}

/// Checks `stream` for an ADI of type `ty` and returns its sections;
/// nothing is applied. Errors: `ENODATA` for a stream cut short,
/// `EINVAL` for a wrong magic, another type or geometry, an unknown,
/// repeated, missing or misordered section, a section of the wrong
/// length or bytes after the end; `EPROTO` for another version;
/// `EBADMSG` for a checksum that does not match.
pub fn parse<'a>(ty: &AdiType, stream: &'a [u8]) -> core::result::Result<Parsed<'a>, Refused> {
    let mut r = Reader::new(stream);
    let magic = r
        .u32()
        .map_err(|_| truncated("the stream ends inside its header"))?;
    if magic != MAGIC {
        return Err(refuse(EINVAL, "not a VDCM migration stream (bad magic)"));
    }
    let version = r
        .u16()
        .map_err(|_| truncated("the stream ends inside its header"))?;
    let header_len = r
        .u16()
        .map_err(|_| truncated("the stream ends inside its header"))?;
    if version != VERSION || usize::from(header_len) != HEADER_LEN {
        return Err(refuse(
            errno(kernel::bindings::EPROTO),
            "the stream has a version this VDCM does not read",
        ));
    }
    let mut own = [0u8; HEADER_LEN];
    let mut w = Writer::new(&mut own);
    write_header(ty, &mut w).map_err(|_| refuse(EINVAL, "cannot frame this ADI's header"))?;
    let header = stream
        .get(..HEADER_LEN)
        .ok_or_else(|| truncated("the stream ends inside its header"))?;
    if header != own.as_slice() {
        return Err(refuse(
            EINVAL,
            "the stream is of another ADI type or geometry (name, IDs, BARs, MSI-X or PF state size differ)",
        ));
    }
    r.bytes(HEADER_LEN - 8)
        .map_err(|_| truncated("the stream ends inside its header"))?;

    let expect = [
        (Section::Config, config::CONFIG_SPACE_SIZE, true),
        (Section::Msix, Irqs::saved_size(ty.msix.vectors), true),
        (Section::Pf, ty.state_size, false),
        (Section::Qos, QOS_LEN, true),
    ];
    let mut parts: [&[u8]; 4] = [&[], &[], &[], &[]];
    for ((tag, len, exact), part) in expect.iter().zip(parts.iter_mut()) {
        let t = r
            .u32()
            .map_err(|_| truncated("the stream ends before a section"))?;
        let n = r
            .u32()
            .map_err(|_| truncated("the stream ends inside a section header"))?
            as usize;
        if t != *tag as u32 {
            return Err(refuse(
                EINVAL,
                "a section is unknown, repeated, missing or out of order",
            ));
        }
        if (*exact && n != *len) || n > *len {
            return Err(refuse(
                EINVAL,
                "a section's length does not fit this ADI type",
            ));
        }
        *part = r
            .bytes(n)
            .map_err(|_| truncated("the stream ends inside a section"))?;
    }
    let crc_end = r.position() + SECTION_HEAD;
    let t = r
        .u32()
        .map_err(|_| truncated("the stream ends before its end mark"))?;
    let n = r
        .u32()
        .map_err(|_| truncated("the stream ends inside its end mark"))?;
    if t != Section::End as u32 || n != 4 {
        return Err(refuse(EINVAL, "a section follows the QoS section"));
    }
    let crc = r
        .u32()
        .map_err(|_| truncated("the stream ends inside its end mark"))?;
    if r.remaining() != 0 {
        return Err(refuse(EINVAL, "bytes follow the end mark"));
    }
    let covered = stream.get(..crc_end).unwrap_or(&[]);
    if !crc32c(!0, covered) != crc {
        return Err(refuse(
            errno(kernel::bindings::EBADMSG),
            "the stream's checksum does not match: corrupted",
        ));
    }
    let [config, msix, pf, qos] = parts;
    Ok(Parsed {
        config,
        msix,
        pf,
        qos: qos_from(qos)?,
    })
}

#[kunit_tests(vdcm_migration_stream)]
mod tests {
    use super::*;
    use crate::layout::Bar;
    use crate::layout::Msix;
    use kernel::str::CString;

    const SAMPLE_QOS: Qos = Qos {
        weight: 7,
        priority: 3,
        max_rate: 5000,
        guaranteed_rate: 1000,
        threshold: 0,
    };

    /// A type like the simulated PF's `1q`, with a 64-byte PF state.
    fn sample_type() -> Result<AdiType> {
        let bar = |size| Bar {
            size,
            bits64: false,
            prefetchable: false,
            ranges: KVec::new(),
        };
        let ids = config::DeviceIds {
            vendor: 0xfffe,
            device: 0x51a0,
            revision: 1,
            class: 0xff0000,
            subsystem_vendor: 0xfffe,
            subsystem: 0x51a0,
        };
        let bars = [bar(0x4000), bar(0), bar(0x1000), bar(0), bar(0), bar(0)];
        let msix = Msix {
            vectors: 2,
            bar: 0,
            table: 0x2000,
            pba: 0x3000,
        };
        let config = crate::layout::lay_out_config(&ids, &bars, &msix, &[])?;
        Ok(AdiType {
            name: CString::try_from_fmt(fmt!("1q"))?,
            description: CString::try_from_fmt(fmt!("test"))?,
            ids,
            bars,
            msix,
            dvsecs: KVec::new(),
            max_threshold: 0,
            pool: 0,
            units: 1,
            pins: 1,
            state_size: 64,
            config,
        })
    }

    /// A whole stream for `ty` with recognisable section contents.
    fn stream(ty: &AdiType) -> Result<KVVec<u8>> {
        let mut buf = KVVec::from_elem(0u8, max_len(ty), GFP_KERNEL)?;
        let mut w = Writer::new(&mut buf);
        write_header(ty, &mut w)?;
        let cfg = KVVec::from_elem(0x5au8, config::CONFIG_SPACE_SIZE, GFP_KERNEL)?;
        write_section(&mut w, Section::Config, &cfg)?;
        let msix = KVVec::from_elem(0u8, Irqs::saved_size(ty.msix.vectors), GFP_KERNEL)?;
        write_section(&mut w, Section::Msix, &msix)?;
        write_section(&mut w, Section::Pf, b"pf")?;
        write_section(&mut w, Section::Qos, &qos_bytes(&SAMPLE_QOS)?)?;
        let crc = crc32c(!0, w.written());
        write_end(&mut w, crc)?;
        let len = w.len();
        buf.truncate(len);
        Ok(buf)
    }

    fn errno_of(ty: &AdiType, s: &[u8]) -> i32 {
        match parse(ty, s) {
            Ok(_) => 0,
            Err(r) => r.errno.to_errno(),
        }
    }

    #[test]
    fn round_trip() -> Result {
        let ty = sample_type()?;
        let s = stream(&ty)?;
        let p = parse(&ty, &s).map_err(|r| r.errno)?;
        assert_eq!(p.config.len(), config::CONFIG_SPACE_SIZE);
        assert_eq!(p.pf, b"pf");
        assert_eq!(p.qos, SAMPLE_QOS);
        Ok(())
    }

    #[test]
    fn every_truncation_is_enodata() -> Result {
        let ty = sample_type()?;
        let s = stream(&ty)?;
        for cut in [
            0,
            3,
            7,
            HEADER_LEN - 1,
            HEADER_LEN + 3,
            s.len() - 5,
            s.len() - 1,
        ] {
            assert_eq!(
                errno_of(&ty, s.get(..cut).unwrap_or(&[])),
                -(kernel::bindings::ENODATA as i32)
            );
        }
        Ok(())
    }

    #[test]
    fn corruption_is_ebadmsg() -> Result {
        let ty = sample_type()?;
        let mut s = stream(&ty)?;
        if let Some(b) = s.get_mut(HEADER_LEN + 100) {
            *b ^= 1;
        }
        assert_eq!(errno_of(&ty, &s), -(kernel::bindings::EBADMSG as i32));
        Ok(())
    }

    #[test]
    fn version_magic_and_trailing_bytes() -> Result {
        let ty = sample_type()?;
        let mut s = stream(&ty)?;
        // Version 1 streams had no QoS section.
        if let Some(b) = s.get_mut(4) {
            *b = 1;
        }
        assert_eq!(errno_of(&ty, &s), -(kernel::bindings::EPROTO as i32));
        let mut s = stream(&ty)?;
        if let Some(b) = s.get_mut(0) {
            *b = 0;
        }
        assert_eq!(errno_of(&ty, &s), EINVAL.to_errno());
        let mut s = stream(&ty)?;
        s.push(0, GFP_KERNEL)?;
        assert_eq!(errno_of(&ty, &s), EINVAL.to_errno());
        Ok(())
    }

    #[test]
    fn another_geometry_is_einval() -> Result {
        let ty = sample_type()?;
        let s = stream(&ty)?;
        let mut other = sample_type()?;
        other.msix.vectors += 1;
        assert_eq!(errno_of(&other, &s), EINVAL.to_errno());
        Ok(())
    }
}
