//! The header of a saved maplet, written and read in this one place.

use super::trust::Trust;
use super::{Maplet, Options};
use crate::error::{MapletError, Result};
use crate::format::{self};
use crate::operator::{Operator, OperatorKind};
use crate::shard::Shard;
use crate::side::SideStore;
use crate::storage::Words;
use crate::table::Table;

impl<O: Operator> Maplet<O> {
    /// The operator name stored in the header (empty but for a custom one).
    fn stored_name(&self) -> &[u8] {
        match self.op.kind() {
            OperatorKind::Custom(n) => n.as_bytes(),
            _ => &[],
        }
    }

    /// Where the table's words start in the saved bytes (after the header
    /// and the operator's name, on a multiple of eight).
    pub(super) fn table_offset(&self) -> usize {
        (format::FIXED_HEADER + self.stored_name().len()).next_multiple_of(8)
    }

    /// The bytes of the file before the table's words: this maplet's
    /// parameters with table `t`'s shape and counts, for a side store of
    /// `side_len` bytes.
    pub(super) fn header(&self, t: &Table, side_len: usize) -> Vec<u8> {
        let name = self.stored_name();
        let table_offset = self.table_offset();
        let mut head = Vec::with_capacity(table_offset);
        head.extend_from_slice(&format::MAGIC);
        head.extend_from_slice(&format::VERSION.to_le_bytes());
        let flags = t.signed() as u32
            | ((!O::PACKED) as u32) << 1
            | (self.options.fixed_precision as u32) << 2
            | self.shard.index() << 8;
        head.extend_from_slice(&flags.to_le_bytes());
        head.extend_from_slice(&[
            format::kind_code(self.op.kind()),
            t.fbits() as u8,
            t.vbits() as u8,
            self.shard.bits() as u8,
        ]);
        head.extend_from_slice(&(name.len() as u32).to_le_bytes());
        for x in [
            self.options.seed,
            self.expected_items as u64,
            self.false_positive_rate.to_bits(),
            self.options.memory_limit.map_or(u64::MAX, |l| l as u64),
            t.canonical(),
            self.initial_canonical,
            self.initial_fbits as u64,
            t.len() as u64,
            t.words().len() as u64,
            side_len as u64,
        ] {
            head.extend_from_slice(&x.to_le_bytes());
        }
        for h in t.len_hist() {
            head.extend_from_slice(&h.to_le_bytes());
        }
        debug_assert_eq!(head.len(), format::FIXED_HEADER);
        head.extend_from_slice(name);
        head.resize(table_offset, 0);
        head
    }
}

/// The parsed header of a saved maplet.
pub(super) struct Header {
    pub(super) flags: u32,
    pub(super) fbits: u32,
    pub(super) vbits: u32,
    pub(super) seed: u64,
    pub(super) expected_items: usize,
    pub(super) false_positive_rate: f64,
    pub(super) memory_limit: Option<usize>,
    pub(super) canonical: u64,
    pub(super) initial_canonical: u64,
    pub(super) initial_fbits: u32,
    pub(super) shard: Shard,
    pub(super) len: usize,
    pub(super) side_len: usize,
    pub(super) len_hist: [u64; 64],
}

impl Header {
    /// The header, the offset of the table's words and their number.
    /// `head` holds the body's first bytes (at least up to the table, if
    /// the body is well formed), `body_len` the body's length.
    pub(super) fn read<O: Operator>(
        head: &[u8],
        body_len: usize,
        op: &O,
    ) -> Result<(Header, usize, usize)> {
        let corrupt = |m: String| MapletError::Corrupt(m);
        let mut b = &head[12..];
        let flags = format::take_u32(&mut b)?;
        let codes = format::take(&mut b, 4)?;
        let name_len = format::take_u32(&mut b)? as usize;
        let mut nums = [0u64; 10];
        for n in nums.iter_mut() {
            *n = format::take_u64(&mut b)?;
        }
        let mut len_hist = [0u64; 64];
        for h in len_hist.iter_mut() {
            *h = format::take_u64(&mut b)?;
        }
        let name = format::take(&mut b, name_len)?;
        let kind = op.kind();
        let stored_name =
            std::str::from_utf8(name).map_err(|_| corrupt("operator name is not UTF-8".into()))?;
        let want_name = match kind {
            OperatorKind::Custom(n) => n,
            _ => "",
        };
        if codes[0] != format::kind_code(kind) || stored_name != want_name {
            return Err(MapletError::Incompatible(format!(
                "the data holds a maplet of operator code {} {stored_name:?}, not {kind}",
                codes[0]
            )));
        }
        if (flags >> 3) & 0x1f != 0 || ((flags >> 1) & 1 == 1) == O::PACKED {
            return Err(corrupt("unknown flags".into()));
        }
        let shard = Shard::from_stored(codes[3] as u32, flags >> 8)
            .ok_or_else(|| corrupt("shard out of range".into()))?;
        let [seed, expected, rate, limit, canonical, initial_canonical, initial_fbits, len, words_len, side_len] =
            nums;
        let rate = f64::from_bits(rate);
        if !(rate > 0.0 && rate < 1.0)
            || expected == 0
            || initial_canonical == 0
            || initial_fbits > 62
        {
            return Err(corrupt("parameters out of range".into()));
        }
        let table_offset = (format::FIXED_HEADER + name_len).next_multiple_of(8);
        // The name's padding must be present too (found by fuzz_decode).
        if table_offset > body_len {
            return Err(corrupt(format!(
                "the operator name's padding runs past the {} bytes of data",
                body_len
            )));
        }
        let available = (body_len.saturating_sub(table_offset)) as u64;
        if words_len.checked_mul(8).is_none_or(|w| w > available)
            || side_len > available
            || len > words_len.saturating_mul(64)
        {
            return Err(corrupt(format!(
                "sizes exceed the {} bytes of data",
                body_len
            )));
        }
        let header = Header {
            flags,
            fbits: codes[1] as u32,
            vbits: codes[2] as u32,
            seed,
            expected_items: expected as usize,
            false_positive_rate: rate,
            memory_limit: (limit != u64::MAX).then_some(limit as usize),
            canonical,
            initial_canonical,
            initial_fbits: initial_fbits as u32,
            shard,
            len: len as usize,
            side_len: side_len as usize,
            len_hist,
        };
        Ok((header, table_offset, words_len as usize))
    }

    /// The table's words and the side store of `body`, whose header says
    /// they hold `words_len` words from `table_offset` and then
    /// `header.side_len` bytes, which must end it.
    pub(super) fn parts<'a>(
        body: &'a [u8],
        table_offset: usize,
        words_len: usize,
        header: &Header,
    ) -> Result<(&'a [u8], &'a [u8])> {
        let mut rest = &body[table_offset..];
        let words = format::take(&mut rest, words_len * 8)?;
        let side = format::take(&mut rest, header.side_len)?;
        if !rest.is_empty() {
            return Err(MapletError::Corrupt(format!(
                "{} bytes after the side store",
                rest.len()
            )));
        }
        Ok((words, side))
    }

    /// That the initial size fits the table's: `doublings` of a whole
    /// number (the table grows only by doubling).
    pub(super) fn check_initial(&self, table: &Table) -> Result<()> {
        if self.initial_fbits < 2
            || self.initial_fbits > table.fbits()
            || self.initial_canonical > table.canonical()
            || table.canonical() % self.initial_canonical != 0
            || !(table.canonical() / self.initial_canonical).is_power_of_two()
        {
            return Err(MapletError::Corrupt(
                "initial size does not fit the table".into(),
            ));
        }
        Ok(())
    }

    /// The maplet these parts describe, every invariant checked.
    pub(super) fn into_maplet<O: Operator>(
        self,
        op: O,
        words: Words,
        mut side_bytes: &[u8],
        mut decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Maplet<O>> {
        let signed = self.flags & 1 == 1;
        let table = Table::from_parts(
            self.canonical,
            self.fbits,
            self.vbits,
            signed,
            words,
            self.len,
            self.len_hist,
        )
        .map_err(MapletError::Corrupt)?;
        table.validate().map_err(MapletError::Corrupt)?;
        self.check_initial(&table)?;
        let side = if O::PACKED {
            if !side_bytes.is_empty() {
                return Err(MapletError::Corrupt(
                    "a side store for a packed operator".into(),
                ));
            }
            SideStore::default()
        } else {
            let n = format::take_u64(&mut side_bytes)?;
            // Each index takes at least four bytes.
            if n > (side_bytes.len() / 4) as u64 {
                return Err(MapletError::Corrupt(format!(
                    "{n} side-store values in {} bytes",
                    side_bytes.len()
                )));
            }
            let mut slots = Vec::with_capacity(n as usize);
            for _ in 0..n {
                slots.push(
                    format::take_sized(&mut side_bytes)?
                        .map(&mut decode)
                        .transpose()?,
                );
            }
            if !side_bytes.is_empty() {
                return Err(MapletError::Corrupt(
                    "bytes left over in the side store".into(),
                ));
            }
            // Every slot refers to its own stored value.
            let mut seen = vec![false; slots.len()];
            for (_, start, end) in table.runs() {
                for s in start..=end {
                    let i = table.value(s);
                    match usize::try_from(i)
                        .ok()
                        .filter(|&i| i < slots.len() && slots[i].is_some())
                    {
                        Some(i) if !seen[i] => seen[i] = true,
                        _ => {
                            return Err(MapletError::Corrupt(format!(
                                "slot {s} refers to side-store value {i}"
                            )))
                        }
                    }
                }
            }
            if seen
                .iter()
                .zip(&slots)
                .any(|(&seen, v)| v.is_some() && !seen)
            {
                return Err(MapletError::Corrupt(
                    "a side-store value no slot refers to".into(),
                ));
            }
            SideStore::from_slots(slots, &op, self.memory_limit.is_some())
        };
        if O::PACKED && !O::ACCEPTS_EVERY_VALUE {
            for (_, start, end) in table.runs() {
                for s in start..=end {
                    op.validate(&op.unpack(table.value(s)))
                        .map_err(|e| MapletError::Corrupt(format!("slot {s}: {e}")))?;
                }
            }
        }
        Ok(Maplet {
            op,
            table,
            side,
            expected_items: self.expected_items,
            false_positive_rate: self.false_positive_rate,
            options: Options {
                seed: self.seed,
                memory_limit: self.memory_limit,
                fixed_precision: self.flags >> 2 & 1 == 1,
            },
            initial_canonical: self.initial_canonical,
            initial_fbits: self.initial_fbits,
            shard: self.shard,
            journal: None,
            trust: Trust::trusted(),
        })
    }
}
